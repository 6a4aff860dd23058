"""ferryml side of benchmarks/server.py, in a fresh interpreter of the repo's venv.

Usage: python _server_ferry_worker.py TMPDIR CONFIG_JSON
CONFIG "phase" is "populate" (FERRY_HOME is the server's home: the runs searched later are
written to its SQLite store before it starts) or "client" (FERRY_TRACKING_URI and
FERRY_TOKEN name the running `ferry server`; FERRY_HOME holds only this client's journal).
Prints one JSON object per workload on stdout as soon as it is done. Mirrors
_server_mlflow_worker.py step for step; keep them in step.
"""

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from statistics import median

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

# 4. One large artifact up and down through the server, beside `cp` of the same file
# (before, between and after: the median is the local copy's figure). Each copy is kept
# until the end, as the uploaded blob and the downloaded file are: on a virtual machine
# that hands freed memory back to its host, a file written into memory freed a moment
# before (a copy deleted at once) skips the host's page faults and goes several times
# faster. That copy is measured too, last, for scale. Each step starts with no dirty
# pages (os.sync, untimed), so none is throttled by the writeback of the one before.
if want("artifact"):

    def cp_s(source: Path, dest: Path) -> float:
        os.sync()
        t = now()
        subprocess.run(["cp", str(source), str(dest)], check=True)
        return now() - t

    source = Path(cfg["artifact"])
    copies = [tmp / f"copy-{i}.bin" for i in range(3)]
    cps = [cp_s(source, copies[0])]
    ferry.set_experiment("artifacts")
    with ferry.start_run() as run:
        os.sync()
        t0 = now()
        ferry.log_artifact(str(source))
        upload_s = now() - t0
    cps.append(cp_s(source, copies[1]))
    os.sync()
    t0 = now()
    got = client.download_artifacts(run.info.run_id, source.name, tmp / "download")
    download_s = now() - t0
    same = filecmp.cmp(source, got, shallow=False)
    cps.append(cp_s(source, copies[2]))
    shutil.rmtree(tmp / "download")
    for copy in copies[1:]:
        copy.unlink()
    reused_s = cp_s(source, copies[0])  # overwrites a kept copy, into memory just freed
    copies[0].unlink()
    emit("artifact", {"upload_s": upload_s, "download_s": download_s, "cp_s": median(cps),
                      "cps": cps, "cp_reused_s": reused_s, "same": same})  # fmt: skip

client.close()
