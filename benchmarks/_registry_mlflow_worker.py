"""MLflow side of benchmarks/registry.py, run with MLflow's own venv: mlflow, scikit-learn
and stdlib only.

Usage: python _registry_mlflow_worker.py TMPDIR CONFIG_JSON   (SQLite store at
TMPDIR/mlflow.db, artifacts in TMPDIR/artifacts)
CONFIG_JSON's "phase" is "log" (log and register the model in new runs, then point the
alias "champion" at version 1) or "load" (a fresh process on the same TMPDIR: load the model
by its alias, cold then warm). Prints one JSON object per figure on stdout as soon as it is
measured. Mirrors _registry_ferry_worker.py step for step; keep them in step.
"""

import json
import pickle
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]  # as the ferryml side
tmp, cfg = sys.argv[1], json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout
now = time.perf_counter
URI = "models:/bench@champion"


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[mlflow] {key}: {value}", file=sys.stderr, flush=True)


def load_data() -> tuple[Any, Any]:
    """Breast-cancer features (a DataFrame) and labels."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True, as_frame=True)


def fit(kind: str, X: Any, y: Any) -> Any:
    """The model, the same on both sides (same scikit-learn, deterministic fits)."""
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0, n_jobs=1)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=5000)
    return model.fit(X, y)


t = now()
import mlflow  # noqa: E402  (timed)

emit("import_s", now() - t)
emit("version", mlflow.__version__)
mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")  # the registry follows it

if cfg["phase"] == "log":
    import sklearn  # noqa: E402  (already imported by fitting; for its version)

    X, y = load_data()
    model = fit(cfg["model"], X, y)
    with open(Path(tmp, "model.pkl"), "wb") as f:  # for the driver's floor: a plain unpickle
        pickle.dump(model, f, protocol=5)
    emit("model_predictions", [int(v) for v in model.predict(X)])
    # MLflow 3 saves scikit-learn models with skops by default, which refuses a forest's
    # tree type unless told to trust it; pickle (ferryml) needs no such list.
    trust = {"skops_trusted_types": ["sklearn.tree._tree.Tree"]} if cfg["model"] == "forest" else {}
    # The first use of a new store creates and migrates its database: timed apart.
    t = now()
    mlflow.create_experiment("bench", artifact_location=Path(tmp, "artifacts").as_uri())
    mlflow.set_experiment("bench")
    emit("first_use_s", now() - t)

    # log_model + register, each in a new run already started; the first call (it pays
    # mlflow.sklearn's lazy imports) apart from the median of the rest. MLflow 3 names the
    # model with name= (artifact_path= is deprecated).
    times, versions, signed = [], [], []
    for _ in range(1 + cfg["log_repeats"]):
        with mlflow.start_run():
            t = now()
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=X[:5], registered_model_name="bench", **trust
            )
            times.append(now() - t)
        versions.append(info.registered_model_version)
        signed.append(info.signature is not None)
    emit("log_first_s", times[0])
    if times[1:]:
        emit("log_s", {"median": median(times[1:]), "runs": times[1:]})
    emit("log_check", {"versions": versions, "signatures": all(signed)})

    # Context, MLflow only: most of its log_model is inferring the requirements (it loads
    # the model in a child Python and records what that imports). Given them, it skips that,
    # as ferryml, which pins the flavor's library, always does.
    pinned = []
    for _ in range(cfg["pinned_repeats"]):
        with mlflow.start_run():
            t = now()
            mlflow.sklearn.log_model(
                model, name="model", input_example=X[:5], registered_model_name="bench",
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"], **trust,
            )  # fmt: skip
            pinned.append(now() - t)
    if pinned:
        emit("log_pinned_s", {"median": median(pinned), "runs": pinned})

    from mlflow import MlflowClient  # noqa: E402

    t = now()
    MlflowClient().set_registered_model_alias("bench", "champion", 1)
    emit("alias_s", now() - t)

else:  # load, in a fresh process
    t = now()
    loaded = mlflow.pyfunc.load_model(URI)
    emit("load_cold_s", now() - t)
    warm = []
    for _ in range(cfg["load_repeats"]):
        t = now()
        again = mlflow.pyfunc.load_model(URI)
        warm.append(now() - t)
    if warm:
        emit("load_warm_s", warm)
    X, _ = load_data()  # after the timing: its imports are no part of loading
    version = mlflow.MlflowClient().get_model_version_by_alias("bench", "champion").version
    emit("loaded_version", int(version))
    emit("head_predictions", [int(v) for v in loaded.predict(X[:5])])
    emit("loaded_predictions", [int(v) for v in loaded.predict(X)])
