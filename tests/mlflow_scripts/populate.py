"""Run by the real mlflow client: an MLflow SQLite store for ``ferry import mlflow`` to
read (argv: its URI, the number of runs): runs with params and metrics, a parent with
nested runs, a history of 10,000 steps, artifacts, a dataset input, logged models and a
registry with tags and aliases. Prints one JSON object of what it wrote."""

import json
import sys
import time

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from sklearn.linear_model import LinearRegression

uri, count = sys.argv[1], int(sys.argv[2])
mlflow.set_tracking_uri(uri)
client = MlflowClient()
out: dict = {}
bulk = client.create_experiment("bulk", tags={"team": "ml"})
now = int(time.time() * 1000)
for i in range(count):
    run = client.create_run(bulk, run_name=f"r{i}", start_time=now + i)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(f"m{k}", i + k / 10, now, s) for k in range(3) for s in range(3)],
        params=[Param("i", str(i)), Param("kind", "bulk")],
        tags=[RunTag("index", str(i))],
    )
    client.set_terminated(run.info.run_id, end_time=now + i + 1)
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
