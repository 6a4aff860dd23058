"""Run by the real mlflow client (its own venv) against ferry server: experiments, runs,
params, metrics, tags, artifacts, searches, history, inputs, asynchronous logging. Prints
one JSON object of what it found; fails with the first check that does not hold."""

import json
import math
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

out: dict = {}
client = MlflowClient()
work = Path(tempfile.mkdtemp())


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except MlflowException as e:
        assert e.error_code == code, (code, e.error_code, str(e))
        return str(e)
    raise AssertionError(f"{call.__name__} did not fail with {code}")


# experiments: create, get by name, tags, rename, delete, restore
exp_id = mlflow.set_experiment("mlflow-compat").experiment_id
assert mlflow.get_experiment_by_name("mlflow-compat").experiment_id == exp_id
assert mlflow.get_experiment_by_name("no-such-experiment") is None
client.set_experiment_tag(exp_id, "team", "ml")
assert client.get_experiment(exp_id).tags["team"] == "ml"
expect_error("RESOURCE_ALREADY_EXISTS", client.create_experiment, "mlflow-compat")
other = client.create_experiment("to-delete", tags={"x": "1"})
client.rename_experiment(other, "to-delete-2")
client.delete_experiment(other)
assert client.get_experiment(other).lifecycle_stage == "deleted"
deleted = client.search_experiments(view_type=mlflow.entities.ViewType.DELETED_ONLY)
assert [e.name for e in deleted] == ["to-delete-2"], deleted
client.restore_experiment(other)
assert client.get_experiment(other).lifecycle_stage == "active"
found = client.search_experiments(filter_string="name LIKE 'to-%'", order_by=["name ASC"])
assert [e.name for e in found] == ["to-delete-2"], found
found = client.search_experiments(filter_string="tags.team = 'ml'")
assert [e.experiment_id for e in found] == [exp_id], found
out["experiment_id"] = exp_id

# runs: params, metrics with steps and timestamps, tags, batch, nested, status
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_param("alpha", 0.5)
    mlflow.log_params({"depth": 3, "kind": "tree"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=4)
    mlflow.log_metric("odd", float("nan"))
    mlflow.log_metric("big", float("inf"))
    mlflow.set_tag("team", "proto")
    mlflow.set_tags({"stage": "dev", "owner": "me"})
    client.log_batch(
        parent.info.run_id,
        metrics=[Metric("batch", i * 0.1, 1_700_000_000_000, i) for i in range(1500)],
        params=[Param(f"p{i}", str(i)) for i in range(150)],
        tags=[RunTag("batched", "yes")],
    )
    expect_error("INVALID_PARAMETER_VALUE", mlflow.log_param, "alpha", 0.7)
    for child_name in ("child-a", "child-b"):
        with mlflow.start_run(run_name=child_name, nested=True) as child:
            mlflow.log_metric("loss", 0.3 if child_name == "child-a" else 0.2)
            mlflow.log_param("alpha", "0.5")
    # asynchronous logging: many values, flushed by the run's end
    for step in range(50):
        mlflow.log_metric("async", step * 2.0, step=step, synchronous=False)
    mlflow.log_param("async_param", "x", synchronous=False)

    # artifacts
    (work / "notes.txt").write_text("hello")
    mlflow.log_artifact(str(work / "notes.txt"))
    mlflow.log_artifact(str(work / "notes.txt"), "docs")
    (work / "tables" / "inner").mkdir(parents=True)
    (work / "tables" / "a.csv").write_text("a,b\n1,2\n")
    (work / "tables" / "inner" / "b.csv").write_text("c\n3\n")
    mlflow.log_artifacts(str(work / "tables"), "tables")
    mlflow.log_text("# readme", "texts/readme.md")
    mlflow.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    mlflow.log_figure(figure, "fig.png")

    # datasets
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(frame, name="train-frame", targets="y")
    mlflow.log_input(dataset, context="training", tags={"split": "a"})
run_id = parent.info.run_id
out["run_id"] = run_id

run = client.get_run(run_id)
assert run.info.status == "FINISHED", run.info.status
assert run.info.run_name == "parent"
assert run.data.params["alpha"] == "0.5" and run.data.params["p149"] == "149"
assert run.data.params["async_param"] == "x"
assert run.data.metrics["loss"] == 0.2, run.data.metrics
assert math.isnan(run.data.metrics["odd"]) and run.data.metrics["big"] > 1e308
assert run.data.metrics["async"] == 98.0
assert run.data.tags["team"] == "proto" and run.data.tags["batched"] == "yes"
inputs = run.inputs.dataset_inputs
assert [i.dataset.name for i in inputs] == ["train-frame"], inputs
assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training", "split": "a"}
assert "mlflow_colspec" in inputs[0].dataset.schema

history = client.get_metric_history(run_id, "loss")
assert [(m.step, m.value, m.timestamp) for m in history] == [
    (s, 1.0 / (s + 1), 1_700_000_000_000 + s) for s in range(5)
], history
assert len(client.get_metric_history(run_id, "batch")) == 1500
assert [m.step for m in client.get_metric_history(run_id, "async")] == list(range(50))
assert client.get_metric_history(run_id, "no-such-key") == []

children = client.search_runs(
    [exp_id], f"tags.mlflow.parentRunId = '{run_id}'", order_by=["metrics.loss ASC"]
)
assert [r.info.run_name for r in children] == ["child-b", "child-a"], children
out["children"] = [r.info.run_id for r in children]
found = client.search_runs([exp_id], "metrics.loss < 1 and params.alpha = '0.5'")
assert len(found) == 3, found
found = client.search_runs([exp_id], "attributes.run_name LIKE 'child%'")
assert sorted(r.info.run_name for r in found) == ["child-a", "child-b"]
expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [exp_id], "metrics.loss <<< 1")
frame = mlflow.search_runs(experiment_names=["mlflow-compat"], order_by=["start_time DESC"])
assert len(frame) == 3 and "metrics.loss" in frame.columns, frame.columns

listing = sorted(a.path for a in client.list_artifacts(run_id))
assert listing == ["config.json", "docs", "fig.png", "notes.txt", "tables", "texts"], listing
assert [a.path for a in client.list_artifacts(run_id, "tables")] == ["tables/a.csv", "tables/inner"]
target = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(work / "down")))
assert (target / "notes.txt").read_text() == "hello"
assert (target / "tables" / "inner" / "b.csv").read_text() == "c\n3\n"
assert (target / "fig.png").read_bytes()[:4] == b"\x89PNG"
assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"lr": 0.1, "layers": [1, 2]}
assert mlflow.artifacts.load_text(f"runs:/{run_id}/texts/readme.md") == "# readme"
expect_error(
    "RESOURCE_DOES_NOT_EXIST",
    mlflow.artifacts.download_artifacts,
    run_id=run_id,
    artifact_path="nope.txt",
    dst_path=str(work / "nope"),
)

# status and deletion
failed = client.create_run(exp_id, run_name="failing")
client.set_terminated(failed.info.run_id, status="FAILED")
assert client.get_run(failed.info.run_id).info.status == "FAILED"
client.delete_run(failed.info.run_id)
assert client.get_run(failed.info.run_id).info.lifecycle_stage == "deleted"
expect_error("INVALID_PARAMETER_VALUE", client.log_metric, failed.info.run_id, "m", 1.0)
assert failed.info.run_id not in [r.info.run_id for r in client.search_runs([exp_id])]
client.restore_run(failed.info.run_id)
client.set_tag(failed.info.run_id, "gone", "soon")
client.delete_tag(failed.info.run_id, "gone")
assert "gone" not in client.get_run(failed.info.run_id).data.tags
expect_error("RESOURCE_DOES_NOT_EXIST", client.get_run, "0" * 32)
out["failed_run_id"] = failed.info.run_id

# a run ferryml logged, and searches paging past 1,000 runs
ferry_run, bulk = sys.argv[1], sys.argv[2]
logged = client.get_run(ferry_run)
assert logged.data.params == {"lr": "0.1"}, logged.data.params
assert logged.data.metrics == {"rmse": 0.25} and logged.data.tags["origin"] == "ferryml"
assert logged.data.tags["mlflow.runName"] == "ferry-run"
history = client.get_metric_history(ferry_run, "rmse")
assert [(m.step, m.timestamp) for m in history] == [(3, 1_700_000_000_003)], history
assert [a.path for a in client.list_artifacts(ferry_run, "out")] == ["out/report.txt"]
report = mlflow.artifacts.load_text(f"runs:/{ferry_run}/out/report.txt")
assert report == "written by ferryml", report
bulk_id = client.get_experiment_by_name(bulk).experiment_id
first = client.search_runs([bulk_id], "metrics.i >= 0", order_by=["metrics.i ASC"])
assert len(first) == 1000 and first.token, (len(first), first.token)
second = client.search_runs(
    [bulk_id], "metrics.i >= 0", order_by=["metrics.i ASC"], page_token=first.token
)
assert not second.token, second.token
values = [r.data.metrics["i"] for r in [*first, *second]]
assert values == [float(i) for i in range(len(values))] and len(values) > 1000, len(values)
frame = mlflow.search_runs([bulk_id], max_results=5000, order_by=["attributes.start_time DESC"])
assert len(frame) == len(values) and frame["tags.mlflow.runName"][0] == f"r{len(values) - 1}"
out["bulk"] = len(values)

print(json.dumps(out))
