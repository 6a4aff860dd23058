"""One side of benchmarks/autolog.py, in that side's venv: scikit-learn, numpy, stdlib, and
ferryml or mlflow.

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


def workloads() -> dict[str, Any]:
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=cfg["rows"], n_features=20, random_state=0)
    X = X.astype(np.float64)
    small = cfg["search_rows"]
    return {
        "logreg": lambda: LogisticRegression(max_iter=500).fit(X, y),
        "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
            X, y
        ),
        "grid": lambda: GridSearchCV(
            LogisticRegression(max_iter=500), {"C": [0.1, 1.0, 10.0]}, cv=3
        ).fit(X[:small], y[:small]),
    }


def enable(on: bool) -> None:
    if side == "ferryml":
        import ferryml

        ferryml.autolog(disable=not on)
    else:
        import mlflow

        mlflow.sklearn.autolog(disable=not on, silent=True)


def main() -> None:
    if side == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("autolog")
    else:
        import ferryml

        ferryml.set_experiment("autolog")
    fits = workloads()
    for f in fits.values():
        f()  # warm scikit-learn up, unlogged
    enable(True)
    t = time.perf_counter()
    fits["logreg"]()
    emit("first", time.perf_counter() - t)  # the first autologged fit: imports
    enable(False)
    for name, f in fits.items():
        plain, auto, cpu_plain, cpu_auto = [], [], [], []
        for block in ("plain", "auto", "plain"):
            enable(block == "auto")
            for _ in range(cfg["repeats"]):
                c, t = cpu(), time.perf_counter()
                f()
                wall, used = time.perf_counter() - t, cpu() - c
                (auto if block == "auto" else plain).append(wall)
                (cpu_auto if block == "auto" else cpu_plain).append(used)
        enable(False)
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
