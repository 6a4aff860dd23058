"""Run by the real mlflow client: an MLflow SQLite store for ``ferry import mlflow`` to
read (argv: its URI, the number of runs): bulk runs with params and metrics, then
_history.log_history. Prints one JSON object of what it wrote."""

import json
import sqlite3
import sys
import time
import uuid

import mlflow
from _history import RUNS, VALUES, log_history
from mlflow import MlflowClient

uri, count = sys.argv[1], int(sys.argv[2])
mlflow.set_tracking_uri(uri)
client = MlflowClient()
out: dict = {}
bulk = client.create_experiment("bulk", tags={"team": "ml"})
now = int(time.time() * 1000)
# The bulk runs go into MLflow's own tables in one transaction (the client writes about
# one run a second on this loaded machine); MLflow reads them back below.
database = sqlite3.connect(uri[len("sqlite:///") :])
with database:
    for i in range(count):
        run_id = uuid.uuid4().hex
        database.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'me', 'FINISHED', "
            "?, ?, '', 'active', '', ?)",
            (run_id, f"r{i}", now + i, now + i + 1, int(bulk)),
        )
        database.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [("i", str(i), run_id), ("kind", "bulk", run_id)],
        )
        database.execute(
            "INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.runName', ?, ?)",
            (f"r{i}", run_id),
        )
        values = [(f"m{k}", i + k / 10, now, run_id, s) for k in range(3) for s in range(3)]
        database.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            values,
        )
        database.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES (?, ?, ?, 2, 0, ?)",
            [(f"m{k}", i + k / 10, now, run_id) for k in range(3)],
        )
database.close()
found = client.search_runs([bulk], "metrics.m0 >= 0", max_results=count + 1)
assert len(found) == count and found[0].data.params["kind"] == "bulk", len(found)
out.update(log_history(client, now))
out.update(runs=count + RUNS, values=count * 9 + VALUES, bulk=count)
print(json.dumps(out))
