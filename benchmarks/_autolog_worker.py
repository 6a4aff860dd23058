"""One side of benchmarks/autolog.py, in that side's venv: scikit-learn, XGBoost, LightGBM,
numpy, stdlib, and ferryml or mlflow.

Usage: AUTOLOG_BENCH_SIDE=ferryml|mlflow python _autolog_worker.py TMPDIR CONFIG_JSON
Each workload is fitted plainly, then with the side's autolog (each fit outside a run, so
autolog starts and ends one), then plainly again; one JSON object per figure on stdout:
{"<workload>": {"plain": [s...], "auto": [s...], "first": s, "cpu_plain": s, "cpu_auto": s}}.
The first autologged fit of the process (it pays lazy imports) is kept apart.
"""

import json
import os
import resource
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
side, tmp, cfg = os.environ["AUTOLOG_BENCH_SIDE"], sys.argv[1], json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[{side}] {key}: {value}", file=sys.stderr, flush=True)


def cpu() -> float:
    """User + system time of this process and its waited-for children (MLflow may spawn)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def workloads() -> dict[str, tuple[str, Any]]:
    """name: (the MLflow autolog that covers it, the fit)."""
    import lightgbm as lgb
    import numpy as np
    import xgboost as xgb
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=cfg["rows"], n_features=20, random_state=0)
    X = X.astype(np.float64)
    small, rounds = cfg["search_rows"], cfg["rounds"]
    cut = len(X) * 4 // 5  # the last fifth is the eval set, scored each round
    Xt, yt, Xv, yv = X[:cut], y[:cut], X[cut:], y[cut:]
    dtrain, dvalid = xgb.DMatrix(Xt, yt), xgb.DMatrix(Xv, yv)
    xgb_params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1}
    lgb_params = {"objective": "binary", "num_leaves": 15, "num_threads": 1, "verbose": -1}
    return {
        "logreg": ("sklearn", lambda: LogisticRegression(max_iter=500).fit(X, y)),
        "pipeline": (
            "sklearn",
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
        ),
        "grid": (
            "sklearn",
            lambda: GridSearchCV(
                LogisticRegression(max_iter=500), {"C": [0.1, 1.0, 10.0]}, cv=3
            ).fit(X[:small], y[:small]),
        ),  # fmt: skip
        "xgb_train": (
            "xgboost",
            lambda: xgb.train(
                xgb_params, dtrain, rounds, evals=[(dvalid, "validation")], verbose_eval=False
            ),
        ),
        "xgb_sklearn": (
            "xgboost",
            lambda: xgb.XGBClassifier(n_estimators=rounds, max_depth=4, n_jobs=1).fit(
                Xt, yt, eval_set=[(Xv, yv)], verbose=False
            ),
        ),
        "lgb_train": (
            "lightgbm",
            # a new Dataset each time: LightGBM builds it once, on first use
            lambda: lgb.train(
                lgb_params, lgb.Dataset(Xt, yt), rounds, valid_sets=[lgb.Dataset(Xv, yv)]
            ),
        ),
        "lgb_sklearn": (
            "lightgbm",
            lambda: lgb.LGBMClassifier(
                n_estimators=rounds, num_leaves=15, n_jobs=1, verbose=-1
            ).fit(Xt, yt, eval_X=(Xv,), eval_y=(yv,)),
        ),
    }


def enable(on: bool, flavor: str = "sklearn") -> None:
    if side == "ferryml":
        import ferryml

        ferryml.autolog(disable=not on)  # one call covers every library
    else:
        import importlib

        importlib.import_module(f"mlflow.{flavor}").autolog(disable=not on, silent=True)


def main() -> None:
    if side == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("autolog")
    else:
        import ferryml

        ferryml.set_experiment("autolog")
    fits = workloads()
    for _, f in fits.values():
        f()  # warm the libraries up, unlogged
    enable(True)
    t = time.perf_counter()
    fits["logreg"][1]()
    emit("first", time.perf_counter() - t)  # the first autologged fit: imports
    enable(False)
    for name, (flavor, f) in fits.items():
        if cfg["only"] and not name.startswith(tuple(cfg["only"])):
            continue
        plain, auto, cpu_plain, cpu_auto = [], [], [], []
        for block in ("plain", "auto", "plain"):
            enable(block == "auto", flavor)
            for _ in range(cfg["repeats"]):
                c, t = cpu(), time.perf_counter()
                f()
                wall, used = time.perf_counter() - t, cpu() - c
                (auto if block == "auto" else plain).append(wall)
                (cpu_auto if block == "auto" else cpu_plain).append(used)
        enable(False, flavor)
        emit(
            name,
            {
                "plain": median(plain),
                "auto": median(auto),
                "cpu_plain": median(cpu_plain),
                "cpu_auto": median(cpu_auto),
            },
        )


if __name__ == "__main__":
    main()
