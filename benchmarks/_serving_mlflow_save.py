"""MLflow side of benchmarks/serving.py, run with MLflow's own venv.

Usage: python _serving_mlflow_save.py MODEL_JOBLIB DATA_JSON OUT_DIR
Saves the pickled pipeline with mlflow.sklearn.save_model (signature and input example
from the benchmark's rows) for `mlflow models serve`. Prints versions as JSON on stdout.
"""

import json
import sys

import joblib
import mlflow
import mlflow.sklearn
import pandas as pd
import sklearn
from mlflow.models import infer_signature

out, sys.stdout = sys.stdout, sys.stderr
model = joblib.load(sys.argv[1])
with open(sys.argv[2]) as f:
    example = pd.DataFrame(json.load(f)["rows"][:5])
signature = infer_signature(example, model.predict(example))
mlflow.sklearn.save_model(model, sys.argv[3], signature=signature, input_example=example)
print(json.dumps({"mlflow": mlflow.__version__, "sklearn": sklearn.__version__}), file=out)
