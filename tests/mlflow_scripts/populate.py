"""Run by the real mlflow client: an MLflow SQLite store for ``ferry import mlflow`` to
read (argv: its URI, the number of runs): runs with params and metrics, a parent with
nested runs, a history of 10,000 steps, artifacts, a dataset input, logged models and a
registry with tags and aliases. Prints one JSON object of what it wrote."""

import json
import sqlite3
import sys
import time
import uuid

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.linear_model import LinearRegression

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
mlflow.set_experiment("main")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_param("alpha", "0.5")
    for start in range(0, 10_000, 1000):
        client.log_batch(
            parent.info.run_id,
            metrics=[Metric("loss", 1 / (s + 1), now + s, s) for s in range(start, start + 1000)],
        )
    mlflow.log_text("hello", "notes/hello.txt")
    mlflow.log_dict({"a": 1}, "config.json")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]})
    mlflow.log_input(mlflow.data.from_pandas(frame, name="train"), context="training")
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    mlflow.sklearn.log_model(
        model,
        name="model",
        registered_model_name="line",
        input_example=frame[["x"]].head(2),
        serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],
    )
    for name in ("child-a", "child-b"):
        with mlflow.start_run(run_name=name, nested=True):
            mlflow.log_metric("loss", 0.1)
client.set_registered_model_alias("line", "champion", "1")
client.set_model_version_tag("line", "1", "validated", "yes")
client.set_registered_model_tag("line", "owner", "ml")
out["parent"] = parent.info.run_id
out["runs"] = count + 3
print(json.dumps(out))
