"""The history every populate script writes through the real mlflow client, after its bulk
runs: an experiment deleted; in "main" a parent run with a 10,000-step history, a NaN,
artifacts, a dataset input and a registered logged model, with two nested runs; a deleted
run; the registry's alias and tags. Returns the ids the tests look for."""

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.linear_model import LinearRegression

RUNS = 4  # the runs log_history starts
VALUES = 10_000 + 1 + 2  # the metric values it logs


def log_history(client: MlflowClient, now: int) -> dict:
    client.delete_experiment(client.create_experiment("gone"))
    mlflow.set_experiment("main")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("alpha", "0.5")
        for start in range(0, 10_000, 1000):
            steps = range(start, start + 1000)
            losses = [Metric("loss", 1 / (s + 1), now + s, s) for s in steps]
            client.log_batch(parent.info.run_id, metrics=losses)
        mlflow.log_metric("odd", float("nan"))
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
    with mlflow.start_run(run_name="deleted") as deleted:
        mlflow.log_param("x", "1")
    client.delete_run(deleted.info.run_id)
    client.set_registered_model_alias("line", "champion", "1")
    client.set_model_version_tag("line", "1", "validated", "yes")
    client.set_registered_model_tag("line", "owner", "ml")
    return {"parent": parent.info.run_id, "deleted": deleted.info.run_id}
