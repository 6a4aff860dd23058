"""ferryml side of benchmarks/server.py, in a fresh interpreter of the repo's venv.

Usage: python _server_ferry_worker.py TMPDIR CONFIG_JSON
CONFIG "phase" is "populate" (FERRY_HOME is the server's home: the runs searched later are
written to its SQLite store before it starts) or "client" (FERRY_TRACKING_URI and
FERRY_TOKEN name the running `ferry server`; FERRY_HOME holds only this client's journal).
Prints one JSON object per workload on stdout as soon as it is done. Mirrors
_server_mlflow_worker.py step for step; keep them in step.
"""

import json
import sys
import time
from functools import partial
from pathlib import Path
from statistics import median

from _artifact_rounds import MODES, transfer_rounds
from _search_workload import seeded_runs, time_queries

import ferryml as ferry

tmp, cfg = Path(sys.argv[1]), json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout
now = time.perf_counter
repeats = cfg.get("repeats", 1)


def want(workload: str) -> bool:
    return workload in cfg.get("only", (workload,))


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[ferryml] {key}: {value}", file=sys.stderr, flush=True)


if cfg["phase"] == "populate":
    ferry.set_experiment("bench")
    expected = 0
    t0 = now()
    for params, metrics in seeded_runs(cfg["n_runs"]):
        expected += metrics["m0"] > 0.5
        with ferry.start_run():
            ferry.log_params(params)
            ferry.log_metrics(metrics)
    emit("populate_s", now() - t0)
    emit("filter_expected", expected)
    sys.exit(0)

emit("version", ferry.__version__)
client = ferry.FerryClient()
ferry.set_experiment("log")

# 1. log_metric one call at a time, in fresh runs (medians). A call returns once the value
# is in the local journal; total_s runs until the `with` exit has stored every value on the
# server, and the history read back from the server shows them all.
if want("log_metric"):
    n = cfg["n_log_metric"]
    loops, totals, ok = [], [], True
    for _ in range(repeats):
        with ferry.start_run() as run:
            t0 = now()
            for i in range(n):
                ferry.log_metric("loss", float(i), step=i)
            t1 = now()
        t2 = now()
        loops.append(t1 - t0)
        totals.append(t2 - t0)
        history = client.get_metric_history(run.info.run_id, "loss")
        ok = ok and sorted(m.value for m in history) == [float(i) for i in range(n)]
    emit("log_metric", {"loop_s": median(loops), "total_s": median(totals), "stored_ok": ok})

# 2. log_batch in chunks of 1,000, then flush(): every value is on the server.
if want("log_batch"):
    total, chunk = cfg["n_batch_values"], cfg["batch_chunk"]
    ts = int(time.time() * 1000)
    chunks = [
        [
            ferry.Metric(key=f"b{i % 10}", value=float(i), timestamp=ts, step=i // 10)
            for i in range(s, min(s + chunk, total))
        ]
        for s in range(0, total, chunk)
    ]
    times, ok = [], True
    for _ in range(repeats):
        with ferry.start_run() as run:
            t0 = now()
            for batch in chunks:
                client.log_batch(run.info.run_id, metrics=batch)
            client.flush()
            times.append(now() - t0)
        stored = sum(len(client.get_metric_history(run.info.run_id, f"b{k}")) for k in range(10))
        ok = ok and stored == total
    emit("log_batch", {"s": median(times), "stored_ok": ok})

# 3. Search the runs the populate phase wrote.
if want("search"):
    search = partial(ferry.search_runs, experiment_names=["bench"])
    time_queries({"ferry.search_runs": search}, cfg["search_repeats"], emit)

# 4. One large artifact up and down through the server, beside `cp` of the same file, each
# step facing the same memory state (_artifact_rounds.py says why and how).
if want("artifact"):

    def upload(source: Path) -> str:
        with ferry.start_run() as run:
            ferry.log_artifact(str(source))
        return run.info.run_id

    def download(run_id: str, folder: Path) -> Path:
        return Path(client.download_artifacts(run_id, Path(cfg["artifact"]).name, folder))

    ferry.set_experiment("artifacts")
    modes = tuple(cfg.get("artifact_modes", MODES))
    pids = tuple(cfg.get("server_pids", ()))
    rounds = transfer_rounds(Path(cfg["artifact"]), tmp, upload, download, repeats, modes, pids)
    emit("artifact", rounds)

client.close()
