"""The fluent API, as a training script uses it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.store.entities import RunStatus


def test_run_block_finishes_the_run_and_keeps_what_it_logged(fluent: Settings) -> None:
    ferry.set_experiment("churn")
    with ferry.start_run(run_name="baseline", description="first try") as run:
        ferry.log_param("model", "rf")
        ferry.log_params({"depth": 6, "lr": 0.1})
        ferry.log_metric("auc", 0.91)
        ferry.log_metrics({"f1": 0.8, "acc": 0.85}, step=3)
        ferry.set_tag("team", "ml")
        ferry.set_tags({"stage": "dev"})
    stored = ferry.get_run(run.run_id)
    assert stored.info.status is RunStatus.FINISHED
    assert stored.info.end_time is not None and stored.info.end_time >= stored.info.start_time
    assert (stored.info.run_name, stored.info.description) == ("baseline", "first try")
    assert dict(stored.data.params) == {"model": "rf", "depth": "6", "lr": "0.1"}
    assert dict(stored.data.metrics) == {"auc": 0.91, "f1": 0.8, "acc": 0.85}
    assert stored.data.tags["team"] == "ml" and stored.data.tags["stage"] == "dev"
    assert ferry.active_run() is None


def test_exception_in_the_block_marks_the_run_failed_and_records_it(fluent: Settings) -> None:
    with pytest.raises(ZeroDivisionError), ferry.start_run() as run:
        ferry.log_metric("before", 1.0)
        1 / 0  # noqa: B018
    stored = ferry.get_run(run.run_id)
    assert stored.info.status is RunStatus.FAILED
    assert "ZeroDivisionError: division by zero" in (stored.info.failure or "")
    assert stored.data.metrics == {"before": 1.0}


def test_keyboard_interrupt_marks_the_run_killed(fluent: Settings) -> None:
    with pytest.raises(KeyboardInterrupt), ferry.start_run() as run:
        raise KeyboardInterrupt
    assert ferry.get_run(run.run_id).info.status is RunStatus.KILLED


def test_nested_runs_record_their_parent(fluent: Settings) -> None:
    with ferry.start_run() as parent:
        with ferry.start_run(nested=True) as child:
            assert ferry.active_run() is child
        assert ferry.active_run() is parent
    assert ferry.get_run(child.run_id).info.parent_run_id == parent.run_id


def test_starting_a_second_run_without_nested_is_a_conflict(fluent: Settings) -> None:
    with ferry.start_run() as run, pytest.raises(Conflict, match=f"Run {run.run_id} is active"):
        ferry.start_run()


def test_a_param_cannot_change_but_can_be_logged_again_with_its_value(fluent: Settings) -> None:
    with ferry.start_run() as run:
        ferry.log_param("lr", 0.1)
        ferry.log_param("lr", "0.1")
        with pytest.raises(Conflict, match=r"Param 'lr' of run \w+ is '0.1' already"):
            ferry.log_param("lr", 0.2)
        with pytest.raises(Conflict):
            ferry.log_params({"new": 1, "lr": 0.3})
    assert dict(ferry.get_run(run.run_id).data.params) == {"lr": "0.1"}


def test_metric_history_keeps_every_step_and_timestamp(fluent: Settings) -> None:
    client = ferry.FerryClient(fluent)
    with ferry.start_run() as run:
        for step in range(5):
            ferry.log_metric("loss", 1 / (step + 1), step=step, timestamp=1000 + step)
    history = client.get_metric_history(run.run_id, "loss")
    client.close()
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (s, 1000 + s, 1 / (s + 1)) for s in range(5)
    ]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("a/../b", "may not contain '..'"),
        ("..", "may not contain '..'"),
        ("/abs", "may not start with '/'"),
        ("tab\there", r"'\\t' is not allowed"),
        ("nul\x00", r"'\\x00' is not allowed"),
        ("", "may not be empty"),
        ("k" * 251, "at most 250 characters"),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_logged(
    fluent: Settings, key: str, reason: str
) -> None:
    with ferry.start_run() as run:
        for call in (
            lambda: ferry.log_metric(key, 1.0),
            lambda: ferry.log_param(key, 1),
            lambda: ferry.set_tag(key, "x"),
        ):
            with pytest.raises(InvalidArgument, match=reason):
                call()
    data = ferry.get_run(run.run_id).data
    assert (dict(data.metrics), dict(data.params)) == ({}, {})


@pytest.mark.parametrize("value", ["0.5", None, [1.0], True, object()])
def test_non_numeric_metric_values_are_refused(fluent: Settings, value: object) -> None:
    with ferry.start_run() as run:
        with pytest.raises(InvalidArgument, match="metric values must be numbers"):
            ferry.log_metric("acc", value)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="metric values must be numbers"):
            ferry.log_metrics({"good": 1.0, "acc": value})  # type: ignore[dict-item]
    assert ferry.get_run(run.run_id).data.metrics == {}


def test_bad_steps_and_timestamps_are_refused(fluent: Settings) -> None:
    with ferry.start_run():
        with pytest.raises(InvalidArgument, match="steps are whole numbers"):
            ferry.log_metric("acc", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="timestamps are milliseconds"):
            ferry.log_metric("acc", 1.0, timestamp="now")  # type: ignore[arg-type]


def test_over_long_values_are_refused(fluent: Settings) -> None:
    with ferry.start_run() as run:
        with pytest.raises(InvalidArgument, match="value of 6001 characters; the limit is 6000"):
            ferry.log_param("p", "x" * 6001)
        with pytest.raises(InvalidArgument, match="the limit is 8000"):
            ferry.set_tag("t", "x" * 8001)
    assert ferry.get_run(run.run_id).data.params == {}


def test_numpy_numbers_and_nan_are_accepted_as_metrics(fluent: Settings) -> None:
    import numpy as np

    with ferry.start_run() as run:
        ferry.log_metric("np", np.float32(0.5))
        ferry.log_metric("int", np.int64(3))
        ferry.log_metric("nan", math.nan)
    metrics = ferry.get_run(run.run_id).data.metrics
    assert metrics["np"] == 0.5 and metrics["int"] == 3.0 and math.isnan(metrics["nan"])


def test_artifacts_files_folders_dicts_text_and_figures(fluent: Settings, tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("A")
    (tmp_path / "out" / "sub" / "b.txt").write_text("B")
    (tmp_path / "single.csv").write_text("x,y\n1,2\n")
    client = ferry.FerryClient(fluent)
    with ferry.start_run() as run:
        ferry.log_artifact(tmp_path / "single.csv", "data")
        ferry.log_artifacts(tmp_path / "out", "outputs")
        ferry.log_dict({"a": 1}, "config.json")
        ferry.log_dict({"a": 1}, "config.yaml")
        ferry.log_text("hello", "notes/readme.txt")
        figure, axes = plt.subplots()
        axes.plot([1, 2, 3])
        ferry.log_figure(figure, "plots/line.png")
        plt.close(figure)
    paths = {a.path for a in client.list_artifacts(run.run_id)}
    assert {
        "data/single.csv",
        "outputs/a.txt",
        "outputs/sub/b.txt",
        "config.json",
        "config.yaml",
        "notes/readme.txt",
        "plots/line.png",
    } <= paths
    out = client.download_artifacts(run.run_id, "outputs", tmp_path / "dl")
    assert (out / "sub" / "b.txt").read_text() == "B"
    single = client.download_artifacts(run.run_id, "config.json", tmp_path / "dl2")
    assert json.loads(single.read_text()) == {"a": 1}
    png = client.download_artifacts(run.run_id, "plots/line.png", tmp_path / "dl3")
    assert png.read_bytes().startswith(b"\x89PNG")
    client.close()


def test_missing_artifact_file_and_bad_artifact_paths_are_refused(
    fluent: Settings, tmp_path: Path
) -> None:
    with ferry.start_run():
        with pytest.raises(NotFound, match="no such file or folder"):
            ferry.log_artifact(tmp_path / "nope.txt")
        with pytest.raises(InvalidArgument, match="Invalid artifact path '../x.txt'"):
            ferry.log_text("x", "../x.txt")
        with pytest.raises(InvalidArgument, match="JSON-compatible"):
            ferry.log_dict({"a": object()}, "bad.json")


def test_environment_is_captured_with_the_package_list(fluent: Settings, tmp_path: Path) -> None:
    import platform

    import blake3

    client = ferry.FerryClient(fluent)
    with ferry.start_run() as run:
        pass
    tags = ferry.get_run(run.run_id).data.tags
    assert tags["ferry.python"] == platform.python_version()
    assert tags["ferry.platform"] and tags["ferry.command"]
    packages = client.download_artifacts(run.run_id, "environment/packages.txt", tmp_path)
    text = packages.read_text()
    assert "ferryml==" in text and "sqlalchemy==" in text.lower()
    assert tags["ferry.packages.digest"] == blake3.blake3(text.encode()).hexdigest()
    client.close()


def test_git_commit_dirty_flag_and_diff_digest_are_captured(
    fluent: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=repo, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    with ferry.start_run() as clean:
        pass
    (repo / "train.py").write_text("print(2)\n")
    with ferry.start_run() as dirty:
        pass
    clean_tags = ferry.get_run(clean.run_id).data.tags
    dirty_tags = ferry.get_run(dirty.run_id).data.tags
    assert clean_tags["ferry.git.commit"] == commit == dirty_tags["ferry.git.commit"]
    assert (clean_tags["ferry.git.dirty"], dirty_tags["ferry.git.dirty"]) == ("false", "true")
    assert "ferry.git.diff_digest" not in clean_tags
    assert len(dirty_tags["ferry.git.diff_digest"]) == 64


def test_log_input_records_the_dataset_version(fluent: Settings) -> None:
    with ferry.start_run() as run:
        ferry.log_input("iris", 3, digest="ab" * 32)
    inputs = ferry.get_run(run.run_id).inputs
    assert [(i.name, i.version, i.digest, i.context) for i in inputs] == [
        ("iris", "3", "ab" * 32, "training")
    ]


def test_search_runs_filters_orders_and_returns_frames(fluent: Settings) -> None:
    ferry.set_experiment("search")
    for i, model in enumerate(["rf", "rf", "lr"]):
        with ferry.start_run(run_name=f"r{i}", tags={"team": "ml-core"}):
            ferry.log_param("model", model)
            ferry.log_metric("acc", 0.8 + i / 20)
    found = ferry.search_runs(
        experiment_names=["search"],
        filter_string="metrics.acc > 0.81 and params.model = 'rf' and tags.team LIKE 'ml%'",
    )
    assert [r.info.run_name for r in found] == ["r1"]
    ordered = ferry.search_runs(experiment_names=["search"], order_by=["metrics.acc DESC"])
    assert [r.info.run_name for r in ordered] == ["r2", "r1", "r0"]
    assert len(ferry.search_runs(experiment_names=["search"], max_results=2)) == 2
    frame = ferry.search_runs(
        experiment_names=["search"], order_by="metrics.acc", output_format="pandas"
    )
    assert list(frame["run_name"]) == ["r0", "r1", "r2"]
    assert list(frame["params.model"]) == ["rf", "rf", "lr"]


def test_search_runs_takes_none_as_no_filter_and_no_order_as_mlflow_does(
    fluent: Settings,
) -> None:
    experiment_id = ferry.set_experiment("none").experiment_id
    for i in range(3):
        with ferry.start_run(run_name=f"r{i}"):
            ferry.log_metric("acc", i)
    default = [r.info.run_id for r in ferry.search_runs(experiment_names=["none"])]
    found = ferry.search_runs(experiment_names=["none"], filter_string=None, order_by=None)
    assert [r.info.run_id for r in found] == default and len(default) == 3
    client = ferry.FerryClient(fluent)
    page = client.search_runs([experiment_id], filter_string=None, order_by=None)
    client.close()
    assert [r.info.run_id for r in page.runs] == default


def test_search_by_unknown_experiment_or_bad_format_is_refused(fluent: Settings) -> None:
    with pytest.raises(NotFound, match="Experiment 'nope' not found"):
        ferry.search_runs(experiment_names=["nope"])
    with pytest.raises(InvalidArgument, match="output_format must be 'list' or 'pandas'"):
        ferry.search_runs(output_format="csv")


def test_resuming_a_run_logs_more_to_it(fluent: Settings) -> None:
    with ferry.start_run() as run:
        ferry.log_metric("a", 1.0)
    with ferry.start_run(run.run_id):
        assert ferry.get_run(run.run_id).info.status is RunStatus.RUNNING
        ferry.log_metric("b", 2.0)
    stored = ferry.get_run(run.run_id)
    assert stored.info.status is RunStatus.FINISHED
    assert dict(stored.data.metrics) == {"a": 1.0, "b": 2.0}
