"""The MLflow store benchmarks/mlflow_compat.py imports, made with MLflow's own venv: mlflow
creates the SQLite schema (and the experiment); the runs, params and metric histories then
go straight into its tables (through the client, 10 million values would take hours).

Usage: python _mlflow_import_source.py TMPDIR CONFIG_JSON
CONFIG: "db" (the file to make), "n_runs", "n_metrics", "n_steps". Prints {"source_s": ...}.
"""

import json
import sqlite3
import sys
import time
import uuid

import mlflow
from mlflow import MlflowClient

cfg = json.loads(sys.argv[2])
db, runs, metrics, steps = cfg["db"], cfg["n_runs"], cfg["n_metrics"], cfg["n_steps"]
t0 = time.perf_counter()
mlflow.set_tracking_uri(f"sqlite:///{db}")
experiment = int(MlflowClient().create_experiment("import-bench"))
now = int(time.time() * 1000)
conn = sqlite3.connect(db)
conn.execute("PRAGMA synchronous=OFF")
with conn:
    for i in range(runs):
        run_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', "
            "?, ?, '', 'active', '', ?)",
            (run_id, f"r{i}", now + i, now + i + 1, experiment),
        )
        conn.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [(f"p{k}", str(i * k), run_id) for k in range(10)],
        )
        values = [
            (f"m{k}", i + k + s / steps, now + s, run_id, s)
            for k in range(metrics)
            for s in range(steps)
        ]
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            values,
        )
        last = steps - 1
        conn.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES (?, ?, ?, ?, 0, ?)",
            [(f"m{k}", i + k + last / steps, now + last, last, run_id) for k in range(metrics)],
        )
conn.close()
print(json.dumps({"source_s": time.perf_counter() - t0}))
