"""Model side of benchmarks/serving.py, run with the project's venv.

Usage: python _serving_model.py TMPDIR
Trains ONE scikit-learn pipeline on the breast cancer data, pickles it (joblib) for MLflow
and BentoML to load in their own venvs, registers the same object in ferryml's registry
(FERRY_HOME=TMPDIR/ferry-home, as cancer@champion) and writes TMPDIR/data.json: the
columns, the request rows and the predictions the model itself gives for them, so every
server's answers can be checked. Prints one JSON object on stdout.
"""

import json
import sys
import time
from pathlib import Path

import joblib
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

tmp = Path(sys.argv[1])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
joblib.dump(model, tmp / "model.joblib")

rows = X.iloc[:100]
data = {
    "columns": list(X.columns),
    "rows": rows.to_dict(orient="records"),
    "expected": [int(v) for v in model.predict(rows)],
}
(tmp / "data.json").write_text(json.dumps(data))

import ferryml as ferry  # noqa: E402  (after the data work: its import is not timed here)

t = time.perf_counter()
ferry.configure(home=str(tmp / "ferry-home"))
with ferry.start_run():
    ferry.log_model(model, input_example=X.head(), registered_model_name="cancer")
ferry.set_registered_model_alias("cancer", "champion", 1)
register_s = time.perf_counter() - t

import importlib.metadata as md  # noqa: E402

print(
    json.dumps(
        {
            "sklearn": sklearn.__version__,
            "ferryml": md.version("ferryml"),
            "register_s": register_s,
        }
    ),
    file=out,
    flush=True,
)
