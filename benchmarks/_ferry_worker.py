"""ferryml side of benchmarks/tracking.py, in a fresh interpreter of the repo's venv.

Usage: FERRY_HOME=TMPDIR python _ferry_worker.py TMPDIR CONFIG_JSON
Prints one JSON object per workload on stdout as soon as it is done, so a failure part way
still leaves the earlier figures. Mirrors _mlflow_worker.py step for step; keep them in step.
"""

import json
import sys
import time
from functools import partial
from statistics import median

from _search_workload import seeded_runs, time_queries

import ferryml as ferry

cfg = json.loads(sys.argv[2])  # argv[1] is $FERRY_HOME, where the store lives
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout
now = time.perf_counter


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[ferryml] {key}: {value}", file=sys.stderr, flush=True)


emit("version", ferry.__version__)
# The first use of a new store creates its database: timed apart from the workloads.
t = now()
ferry.set_experiment("log")
emit("first_use_s", now() - t)

if not cfg.get("search_only") and not cfg.get("search_round"):  # the searches alone
    # 1. log_metric one call at a time in one run, repeated in fresh runs (medians). total_s
    # adds the `with` exit, which flushes everything to the store.
    n, repeats = cfg["n_log_metric"], cfg["repeats"]
    starts, loops, totals = [], [], []
    for _ in range(repeats):
        t = now()
        with ferry.start_run():
            t0 = now()  # start_run is reported apart: it is not a log_metric call
            for i in range(n):
                ferry.log_metric("loss", float(i), step=i)
            t1 = now()
        t2 = now()
        starts.append(t0 - t)
        loops.append(t1 - t0)
        totals.append(t2 - t0)
    logged = ferry.search_runs(experiment_names=["log"], filter_string="metrics.loss >= 0")
    ok = len(logged) == repeats and all(r.data.metrics.get("loss") == n - 1 for r in logged)
    emit("start_run_s", starts[0])  # the first run of a process, as a script meets it
    emit("log_metric", {"loop_s": median(loops), "total_s": median(totals), "latest_ok": ok})

    # 2. log_batch in chunks, then flush() (timed), in fresh runs (median). The Metric objects are
    # built before timing, as on the MLflow side, so the figure is the library's own work.
    total, chunk = cfg["n_batch_values"], cfg["batch_chunk"]
    ts = int(time.time() * 1000)
    chunks = [
        [
            ferry.Metric(key=f"b{i % 10}", value=float(i), timestamp=ts, step=i // 10)
            for i in range(s, min(s + chunk, total))
        ]
        for s in range(0, total, chunk)
    ]
    client = ferry.FerryClient()
    times, calls = [], []
    for _ in range(repeats):
        with ferry.start_run() as run:
            t0 = now()
            for batch in chunks:
                client.log_batch(run.info.run_id, metrics=batch)
            t1 = now()  # the calls returned: every value is journaled and survives a crash
            client.flush()  # ...and now it is in the SQLite store too
            calls.append(t1 - t0)
            times.append(now() - t0)
    emit("log_batch_s", median(times))
    emit("log_batch_call_s", median(calls))

# 3. Search. Its own experiment holds exactly the seeded runs, so counts compare. A later
# round (search_round) times the searches again over the runs the first one made.
ferry.set_experiment("bench")
expected = 0
t0 = now()
for params, metrics in seeded_runs(cfg["n_runs"]):
    expected += metrics["m0"] > 0.5
    if not cfg.get("search_round"):
        with ferry.start_run():
            ferry.log_params(params)
            ferry.log_metrics(metrics)
if not cfg.get("search_round"):
    emit("populate_s", now() - t0)
emit("filter_expected", expected)

search = partial(ferry.search_runs, experiment_names=["bench"])
time_queries({"ferry.search_runs": search}, cfg["search_repeats"], emit)
