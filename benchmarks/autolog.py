"""Autolog benchmark: the time ferryml.autolog() adds to a scikit-learn, an XGBoost and a
LightGBM fit, beside mlflow.sklearn.autolog(), mlflow.xgboost.autolog() and
mlflow.lightgbm.autolog() on the same fits; and a PyTorch loop's logging (below).

    python benchmarks/autolog.py [--quick] [--json] [--only xgb,lgb]

Workloads (make_classification, 20 features): LogisticRegression on 10,000 rows; a Pipeline
(StandardScaler, LogisticRegression) on the same rows; GridSearchCV of LogisticRegression
over 3 values of C, 3 folds, on 2,000 rows; xgboost.train, XGBClassifier, lightgbm.train and
LGBMClassifier, 100 rounds on 8,000 of the rows (one thread), scored each round on the other
2,000. Each fit is outside a run, so autolog starts and ends one, logging params, training
metrics (scikit-learn estimators, the boosters' wrappers too), each round's eval metric and
the feature importances (the boosters), the model with signature and input example, and the
training data of a scikit-learn fit as an input (MLflow's defaults; MLflow also logs the
boosters' datasets, infers the model's pip requirements and plots the importances).
--only runs the workloads whose names start so (and no PyTorch loop).
Added time = median autologged fit - median plain fit (plain fits before and
after the autologged ones), in the same process, wall and CPU (user+sys, children included).
Target: ferryml's added time at most a tenth of MLflow's, on each workload.

PyTorch: the same plain training loop (2,000 steps of an MLP on batches of 32) plainly and
logged: with ``ferryml.autolog_torch`` (``log.step(loss)`` per step, the module at the end),
and with MLflow's recipe for a plain loop (``mlflow.pytorch.autolog()`` covers Lightning
only): ``mlflow.log_params``, ``mlflow.log_metric("loss", loss.item(), step=n)`` per step,
``mlflow.pytorch.log_model`` at the end; ferryml's ``log_metric`` per step as a reference.
Added time = median logged loop - median plain loop (they alternate), for the loop alone and
for the whole run (start, params, model, end), and the time inside the per-step calls. See
_autolog_torch_worker.py.

Each side runs in a fresh interpreter on its own temp folder (SQLite stores): ferryml from
this venv, MLflow 3.17.2 from benchmarks/.cache/mlflow-venv (made on first use, as
tracking.py does; torch, XGBoost and LightGBM are installed into it at the lock's versions).
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from registry import ensure_sklearn
from tracking import FERRY_PY, MLFLOW_ENV, MLFLOW_PY, ensure_mlflow, log, run_worker

FULL = {"rows": 10_000, "search_rows": 2_000, "rounds": 100, "repeats": 3, "steps": 2_000}
QUICK = {"rows": 2_000, "search_rows": 500, "rounds": 20, "repeats": 1, "steps": 500}
TARGET = 10  # MLflow's added time over ferryml's, at least
WORKLOADS = [
    ("logreg", "LogisticRegression, 10,000 rows"),
    ("pipeline", "Pipeline(StandardScaler, LogisticRegression)"),
    ("grid", "GridSearchCV, 3 C x 3 folds, 2,000 rows"),
    ("xgb_train", "xgboost.train, 100 rounds, eval set"),
    ("xgb_sklearn", "XGBClassifier, 100 rounds, eval set"),
    ("lgb_train", "lightgbm.train, 100 rounds, eval set"),
    ("lgb_sklearn", "LGBMClassifier, 100 rounds, eval set"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, one repeat")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--only", default="", help="workloads whose names start so: xgb,lgb")
    args = parser.parse_args()
    cfg = {**(QUICK if args.quick else FULL), "only": [w for w in args.only.split(",") if w]}
    version = ensure_mlflow()
    ensure_sklearn()
    ensure_locked("torch", "torch")
    ensure_locked("xgboost, lightgbm", "xgboost-cpu", "lightgbm")
    results = {}
    for side, py, env in (
        ("ferryml", FERRY_PY, {"FERRY_HOME": "{tmp}"}),
        ("mlflow", MLFLOW_PY, MLFLOW_ENV),
    ):
        log(f"{side} ...")
        results[side] = run_worker(
            py, "_autolog_worker.py", cfg, {**env, "AUTOLOG_BENCH_SIDE": side}
        )
        env = {**env, "AUTOLOG_BENCH_SIDE": side}
        if not cfg["only"]:
            results[side].update(run_worker(py, "_autolog_torch_worker.py", cfg, env))
    if args.json:
        print(json.dumps({"mlflow_version": version, "load": os.getloadavg(), **results}))
        return
    f, m = results["ferryml"], results["mlflow"]
    print(f"autolog, added time per fit (ms; mlflow {version}; load {os.getloadavg()[0]:.2f})")
    print(f"{'workload':48} {'ferryml':>9} {'MLflow':>9} {'ratio':>7} {'cpu f/M':>13}  target")
    ok = True
    for key, label in WORKLOADS:
        if cfg["only"] and not key.startswith(tuple(cfg["only"])):
            continue
        if key not in f or key not in m:
            print(f"{label:48} missing: {f.get('error') or m.get('error')}")
            ok = False
            continue
        fa = (f[key]["auto"] - f[key]["plain"]) * 1000
        ma = (m[key]["auto"] - m[key]["plain"]) * 1000
        fc = (f[key]["cpu_auto"] - f[key]["cpu_plain"]) * 1000
        mc = (m[key]["cpu_auto"] - m[key]["cpu_plain"]) * 1000
        ratio = ma / fa if fa > 0 else float("inf")
        hit = ratio >= TARGET
        ok &= hit
        cpu = f"{fc:.0f}/{mc:.0f}"
        print(
            f"{label:48} {fa:9.1f} {ma:9.1f} {ratio:6.1f}x {cpu:>13}  {'met' if hit else 'MISSED'}"
        )
    print(f"{'first autologged fit of a process, whole (imports)':48} "
          f"{f.get('first', 0) * 1000:9.0f} {m.get('first', 0) * 1000:9.0f}")  # fmt: skip
    if not cfg["only"]:
        ok &= print_torch(f, m, cfg["steps"])
    print(
        f"target: ferryml's added time at most 1/{TARGET} of MLflow's: {'met' if ok else 'MISSED'}"
    )
    sys.exit(0 if ok else 1)


def print_torch(f: dict, m: dict, steps: int) -> bool:
    """The PyTorch rows; whether ferryml's hook met the target on the whole run."""
    print(f"\nPyTorch loop of {steps:,} steps, added time (ms): loop alone, whole run, cpu")
    print(f"{'':48} {'loop':>9} {'whole':>9} {'cpu':>9} {'in calls':>9}")
    rows = [
        ("ferryml.autolog_torch, log.step(loss)", f, "torch_hook"),
        ("ferryml.log_metric(loss.item()) per step", f, "torch_manual"),
        ("MLflow log_metric(loss.item()) per step", m, "torch_manual"),
    ]
    added = {}
    for label, side, key in rows:
        r = side.get(key)
        if r is None:
            print(f"{label:48} missing: {side.get('error')}")
            continue
        loop, whole = (r["loop"] - r["loop_plain"]) * 1000, (r["whole"] - r["whole_plain"]) * 1000
        cpu = (r["cpu"] - r["cpu_plain"]) * 1000
        added[label] = whole
        print(f"{label:48} {loop:9.1f} {whole:9.1f} {cpu:9.1f} {r['calls'] * 1000:9.1f}")
    hook, peer = added.get(rows[0][0]), added.get(rows[2][0])
    if hook is None or peer is None:
        return False
    hit = peer >= TARGET * max(hook, 0.0)
    print(f"{'hook vs MLflow, whole run':48} {'':9} {peer / max(hook, 1.0):8.0f}x  "
          f"{'met' if hit else 'MISSED'}")  # fmt: skip
    return hit


def ensure_locked(modules: str, *distributions: str) -> None:
    """``modules`` importable in the MLflow venv, else ``distributions`` installed into it at
    the versions of this repo's lock (torch's CPU build, xgboost-cpu)."""
    check = [MLFLOW_PY, "-c", f"import {modules}"]
    if subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return
    lock = (Path(__file__).resolve().parent.parent / "requirements" / "lock.txt").read_text()
    specs = []
    for name in distributions:
        pin = re.search(rf"^({re.escape(name)}==\S+)", lock, flags=re.M)
        specs.append(pin.group(1) if pin else name)
    log(f"pip install {' '.join(specs)} (into the MLflow venv)")
    subprocess.run(
        [MLFLOW_PY, "-m", "pip", "install", "--quiet", *specs], check=True, stdout=sys.stderr
    )


if __name__ == "__main__":
    main()
