"""MLflow side of benchmarks/tracking.py, run with MLflow's own venv: mlflow and stdlib only.

Usage: python _mlflow_worker.py TMPDIR CONFIG_JSON   (SQLite store at TMPDIR/mlflow.db)
Prints one JSON object per workload on stdout as soon as it is done. Mirrors
_ferry_worker.py step for step; keep them in step.
"""

import json
import sys
import time
from functools import partial
from statistics import median

import mlflow
from _search_workload import seeded_runs, time_queries
from mlflow import MlflowClient
from mlflow.entities import Metric

tmp, cfg = sys.argv[1], json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout
now = time.perf_counter


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[mlflow] {key}: {value}", file=sys.stderr, flush=True)


emit("version", mlflow.__version__)
mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
# The first use of a new store creates and migrates its database: timed apart.
t = now()
mlflow.set_experiment("log")
emit("first_use_s", now() - t)
client = MlflowClient()

if not cfg.get("search_only") and not cfg.get("search_round"):  # the searches alone
    # 1. log_metric one call at a time in one run, repeated in fresh runs (medians). total_s
    # adds the `with` exit (MLflow has written every call already).
    n, repeats = cfg["n_log_metric"], cfg["repeats"]
    starts, loops, totals = [], [], []
    for _ in range(repeats):
        t = now()
        with mlflow.start_run():
            t0 = now()  # start_run is reported apart: it is not a log_metric call
            for i in range(n):
                mlflow.log_metric("loss", float(i), step=i)
            t1 = now()
        t2 = now()
        starts.append(t0 - t)
        loops.append(t1 - t0)
        totals.append(t2 - t0)
    logged = mlflow.search_runs(
        experiment_names=["log"], filter_string="metrics.loss >= 0", output_format="list"
    )
    ok = len(logged) == repeats and all(r.data.metrics.get("loss") == n - 1 for r in logged)
    emit("start_run_s", starts[0])  # the first run of a process, as a script meets it
    emit("log_metric", {"loop_s": median(loops), "total_s": median(totals), "latest_ok": ok})

    # 1b. The same with MLflow's own asynchronous logging: the calls return before the values
    # are stored, as ferryml's do; total_s runs until they are stored (flush_async_logging).
    loops, totals = [], []
    for _ in range(repeats):
        with mlflow.start_run() as run:
            t0 = now()
            for i in range(n):
                mlflow.log_metric("loss", float(i), step=i, synchronous=False)
            t1 = now()
            mlflow.flush_async_logging()
            t2 = now()
        loops.append(t1 - t0)
        totals.append(t2 - t0)
    stored = client.get_metric_history(run.info.run_id, "loss")
    emit(
        "log_metric_async",
        {"loop_s": median(loops), "total_s": median(totals), "stored_ok": len(stored) == n},
    )

    # 2. log_batch in chunks, in fresh runs (median). The Metric objects are
    # built before timing, as on the ferryml side, so the figure is the library's own work.
    total, chunk = cfg["n_batch_values"], cfg["batch_chunk"]
    ts = int(time.time() * 1000)
    chunks = [
        [Metric(f"b{i % 10}", float(i), ts, i // 10) for i in range(s, min(s + chunk, total))]
        for s in range(0, total, chunk)
    ]
    times = []
    for _ in range(repeats):
        with mlflow.start_run() as run:
            t0 = now()
            for batch in chunks:
                client.log_batch(run.info.run_id, metrics=batch)
            times.append(now() - t0)
    emit("log_batch_s", median(times))

# 3. Search. Its own experiment holds exactly the seeded runs, so counts compare.
exp_id = mlflow.set_experiment("bench").experiment_id
expected = 0
t0 = now()
for params, metrics in seeded_runs(cfg["n_runs"]):
    expected += metrics["m0"] > 0.5
    if not cfg.get("search_round"):  # a later round searches the runs the first one made
        with mlflow.start_run():
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
if not cfg.get("search_round"):
    emit("populate_s", now() - t0)
emit("filter_expected", expected)

# MLflow has two public paths to Run objects; time both and quote the faster.
paths = {
    "MlflowClient().search_runs": partial(client.search_runs, [exp_id]),
    "mlflow.search_runs": partial(
        mlflow.search_runs, experiment_ids=[exp_id], output_format="list"
    ),
}
time_queries(paths, cfg["search_repeats"], emit)
