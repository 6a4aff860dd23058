"""MLflow side of benchmarks/server.py, run with MLflow's own venv: mlflow and stdlib only.

Usage: python _server_mlflow_worker.py TMPDIR CONFIG_JSON
CONFIG "phase" is "populate" (the runs searched later are written straight to the SQLite
file CONFIG "db" that `mlflow server` then serves: through the server it would take
minutes) or "client" (CONFIG "url" names the running `mlflow server`).
Prints one JSON object per workload on stdout as soon as it is done. Mirrors
_server_ferry_worker.py step for step; keep them in step. benchmarks/mlflow_compat.py runs
it against both servers, with one more workload (log_model) of its own.
"""

import json
import sys
import time
from functools import partial
from pathlib import Path
from statistics import median

import mlflow
from _artifact_rounds import MODES, transfer_rounds
from _search_workload import seeded_runs, time_queries
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

tmp, cfg = Path(sys.argv[1]), json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout
now = time.perf_counter
repeats = cfg.get("repeats", 1)


def want(workload: str) -> bool:
    return workload in cfg.get("only", (workload,))


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[mlflow] {key}: {value}", file=sys.stderr, flush=True)


if cfg["phase"] == "populate":
    mlflow.set_tracking_uri(f"sqlite:///{cfg['db']}")
    client = MlflowClient()
    exp_id = mlflow.set_experiment("bench").experiment_id
    expected = 0
    t0 = now()
    for params, metrics in seeded_runs(cfg["n_runs"]):
        expected += metrics["m0"] > 0.5
        run_id = client.create_run(exp_id).info.run_id
        ts = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )  # left RUNNING: ending it is one more transaction, and the searches ignore status
    emit("populate_s", now() - t0)
    emit("filter_expected", expected)
    sys.exit(0)

emit("version", mlflow.__version__)
mlflow.set_tracking_uri(cfg["url"])
client = MlflowClient()
mlflow.set_experiment("log")

# 1. log_metric one call at a time, in fresh runs (medians). Each call returns once the
# server has stored the value; total_s adds the `with` exit.
if want("log_metric"):
    n = cfg["n_log_metric"]
    loops, totals, ok = [], [], True
    for _ in range(repeats):
        with mlflow.start_run() as run:
            t0 = now()
            for i in range(n):
                mlflow.log_metric("loss", float(i), step=i)
            t1 = now()
        t2 = now()
        loops.append(t1 - t0)
        totals.append(t2 - t0)
        history = client.get_metric_history(run.info.run_id, "loss")
        ok = ok and sorted(m.value for m in history) == [float(i) for i in range(n)]
    emit("log_metric", {"loop_s": median(loops), "total_s": median(totals), "stored_ok": ok})

# 2. log_batch in chunks of 1,000 (MLflow's limit per call); each call stores its chunk.
if want("log_batch"):
    total, chunk = cfg["n_batch_values"], cfg["batch_chunk"]
    ts = int(time.time() * 1000)
    chunks = [
        [Metric(f"b{i % 10}", float(i), ts, i // 10) for i in range(s, min(s + chunk, total))]
        for s in range(0, total, chunk)
    ]
    times, ok = [], True
    for _ in range(repeats):
        with mlflow.start_run() as run:
            t0 = now()
            for batch in chunks:
                client.log_batch(run.info.run_id, metrics=batch)
            times.append(now() - t0)
        stored = sum(len(client.get_metric_history(run.info.run_id, f"b{k}")) for k in range(10))
        ok = ok and stored == total
    emit("log_batch", {"s": median(times), "stored_ok": ok})

# 3. Search the runs the populate phase wrote. MLflow has two public paths to Run
# objects; time both and quote the faster.
if want("search"):
    exp_id = client.get_experiment_by_name("bench").experiment_id
    paths = {
        "MlflowClient().search_runs": partial(client.search_runs, [exp_id]),
        "mlflow.search_runs": partial(
            mlflow.search_runs, experiment_ids=[exp_id], output_format="list"
        ),
    }
    time_queries(paths, cfg["search_repeats"], emit)

# 4. One large artifact up and down through the server's artifact proxy
# (--serve-artifacts, the default), timed as ferryml's (_artifact_rounds.py).
if want("artifact"):

    def upload(source: Path) -> str:
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(source))
        return run.info.run_id

    def download(run_id: str, folder: Path) -> Path:
        name = Path(cfg["artifact"]).name
        got = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=name, dst_path=str(folder)
        )
        return Path(got)

    mlflow.set_experiment("artifacts")
    modes = tuple(cfg.get("artifact_modes", MODES))
    pids = tuple(cfg.get("server_pids", ()))
    rounds = transfer_rounds(Path(cfg["artifact"]), tmp, upload, download, repeats, modes, pids)
    emit("artifact", rounds)

# 5. (mlflow_compat.py) log_model of a fitted scikit-learn model with its signature and
# input example, registered as a new version of one model (medians).
if want("log_model"):
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features = np.random.default_rng(0).normal(size=(200, 4))
    model = LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))
    mlflow.set_experiment("models")
    times = []
    for _ in range(repeats):
        with mlflow.start_run():
            t0 = now()
            mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=features[:2],
                registered_model_name="bench-model",
                pip_requirements=["scikit-learn"],  # no requirement inference: not what is timed
            )
            times.append(now() - t0)
    versions = client.search_model_versions("name='bench-model'")
    emit("log_model", {"s": median(times), "stored_ok": len(versions) == repeats})
