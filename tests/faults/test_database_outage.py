"""The metadata store goes away for a while and comes back: a private PostgreSQL cluster is
stopped and started under tracking, the registry, data versions, a pipeline run, the
prediction log, a monitor and the agent; an SQLite store is locked by another process.
Nothing accepted is lost or stored twice, what is refused says the store cannot be reached,
and each component works again by itself once it is back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
from ferryml import predictions
from ferryml.automation import Agent
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.errors import StoreUnavailable
from ferryml.monitoring.monitors import MonitorSpec, add_monitor, run_monitor
from ferryml.registry.models import Registry
from ferryml.serving.deployments import Deployments
from ferryml.serving.predlog import PredictionLog
from ferryml.tracking.client import FerryClient
from private_postgres import PrivateCluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database(private_postgres: PrivateCluster, postgres_ddl: str) -> str:
    """One database of the private cluster for this module's tests."""
    return private_postgres.create_database(postgres_ddl)


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Iterator[Settings]:
    yield Settings(
        home=tmp_path / "home",
        store_url=database,
        artifacts_url=(tmp_path / "artifacts").as_uri(),
        root=tmp_path,
    )


@pytest.fixture
def outage(private_postgres: PrivateCluster) -> Iterator[PrivateCluster]:
    """The cluster, started again after the test whatever it did."""
    yield private_postgres
    if not private_postgres.running():
        private_postgres.start()


def test_tracking_logs_through_an_outage_and_stores_each_value_once(
    settings: Settings, outage: PrivateCluster
) -> None:
    client = FerryClient(settings)
    try:
        run_id = client.create_run(client.create_experiment("outage")).info.run_id
        for step in range(100):
            client.log_metric(run_id, "m", float(step), step=step)
        client.flush()
        outage.stop("immediate")
        for step in range(100, 200):  # accepted into the journal while the store is down
            client.log_metric(run_id, "m", float(step), step=step)
        with pytest.raises(StoreUnavailable) as refused:
            client.get_run(run_id)
        assert f"Cannot reach the store postgresql+psycopg://postgres@127.0.0.1:{outage.port}" in (
            str(refused.value)
        )
        assert "kept in the local journal" in str(refused.value)
        outage.start()
        history = client.get_metric_history(run_id, "m")  # flushes what waited
        assert [m.value for m in history] == [float(s) for s in range(200)]
        client.set_terminated(run_id)
    finally:
        client.close()


def test_the_registry_refuses_while_the_store_is_down_and_records_nothing_twice(
    settings: Settings, outage: PrivateCluster
) -> None:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "label": [0, 0, 1, 1]})
    model = LogisticRegression().fit(frame[["a"]], frame["label"])
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    try:
        for _ in range(2):
            with ferry.start_run():
                ferry.log_model(model, registered_model_name="outage")
        ferry.set_registered_model_alias("outage", "champion", 1)
        outage.stop("fast")
        with pytest.raises(StoreUnavailable, match="Cannot reach the store"):
            ferry.promote("outage", 2, data=frame, target="label", force=True)
        with pytest.raises(StoreUnavailable, match="Cannot reach the store"):
            ferry.set_registered_model_alias("outage", "champion", 2)
        outage.start()
        ferry.set_registered_model_alias("outage", "champion", 2)
    finally:
        ferry.configure(
            home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url
        )
    registry = Registry(settings)
    try:
        moves = [(e.action, e.alias, e.version) for e in registry.history("outage")]
        assert registry.store.resolve_alias("outage", "champion") == 2
    finally:
        registry.close()
    assert moves == [  # the refused moves left nothing; the one after the outage, once
        ("create_version", None, 1),
        ("create_version", None, 2),
        ("set_alias", "champion", 1),
        ("set_alias", "champion", 2),
    ]


def test_a_data_version_is_refused_while_the_store_is_down_and_added_once_after(
    settings: Settings, outage: PrivateCluster, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.txt").write_text(f"image {i}")
    workspace = Workspace(settings)
    try:
        outage.stop("fast")
        with pytest.raises(StoreUnavailable, match="Cannot reach the store"):
            workspace.add(str(folder))
        outage.start()
        version = workspace.add(str(folder))
        assert (version.version, version.files) == (1, 5)
        assert [d.name for d in workspace.list_datasets()] == ["images"]
    finally:
        workspace.close()


def test_the_prediction_log_keeps_its_rows_through_an_outage_and_writes_them_once(
    settings: Settings, outage: PrivateCluster
) -> None:
    ids = [f"p{i}" for i in range(20)]
    with PredictionLog(settings, flush_interval=3600) as log:
        log.record("outage", "primary", "m", 1, ids[:10], pd.DataFrame({"x": range(10)}),
                   [0] * 10, 1.0)  # fmt: skip
        outage.stop("immediate")
        log.record("outage", "primary", "m", 1, ids[10:], pd.DataFrame({"x": range(10)}),
                   [0] * 10, 1.0)  # fmt: skip
        with pytest.raises(StoreUnavailable, match="Cannot reach the store"):
            log.flush()
        assert log.pending_rows == 20  # kept in memory, retried
        outage.start()
        assert log.flush() == 20
    logged = predictions.load("outage", settings=settings, with_feedback=False)
    assert logged["id"].tolist() == ids


def test_a_monitor_pass_is_refused_while_the_store_is_down_and_checks_each_window_once(
    settings: Settings, outage: PrivateCluster
) -> None:
    frame = pd.DataFrame({"a": [float(i % 7) for i in range(40)], "label": [0, 1] * 20})
    workspace = Workspace(settings)
    workspace.add_frame(frame[["a"]], "watched")
    workspace.close()
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    try:
        with ferry.start_run():
            model = LogisticRegression().fit(frame[["a"]], frame["label"])
            ferry.log_model(model, registered_model_name="watched")
    finally:
        ferry.configure(
            home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url
        )
    deployments = Deployments(settings)
    deployments.create("watched", "watched", 1)
    deployments.close()
    add_monitor(settings, MonitorSpec("watch", "watched", "data:watched@1", 10, checks="drift"))
    with PredictionLog(settings) as log:
        ids = [f"w{i}" for i in range(20)]
        log.record("watched", "primary", "watched", 1, ids, frame[["a"]][:20], [0] * 20, 1.0)
    outage.stop("fast")
    with pytest.raises(StoreUnavailable, match="Cannot reach the store"):
        run_monitor(settings, "watch")
    outage.start()
    assert len(run_monitor(settings, "watch")) >= 1  # the complete windows, checked once
    assert run_monitor(settings, "watch") == []


def test_the_agent_reports_an_outage_and_acts_again_when_the_store_is_back(
    settings: Settings, outage: PrivateCluster
) -> None:
    with Agent(settings, {}, schedules=False) as agent:
        assert agent.tick().active
        outage.stop("fast")
        tick = agent.tick()
        assert not tick.active
        assert tick.errors[0].startswith("could not reach the store: Cannot reach the store")
        outage.start()
        assert agent.tick().active


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    db.rollback()
    """
)


def test_a_locked_sqlite_store_holds_values_in_the_journal_until_it_is_free(
    tmp_path: Path,
) -> None:
    settings = Settings.resolve(home=tmp_path / "home", cwd=tmp_path, environ={})
    client = FerryClient(settings)
    run_id = client.create_run(client.create_experiment("locked")).info.run_id
    database = settings.store_url.removeprefix("sqlite:///")
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, database],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        for step in range(500):  # returns at once: the journal takes it
            client.log_metric(run_id, "m", float(step), step=step)
        flushing = threading.Thread(target=client.flush)
        flushing.start()
        flushing.join(timeout=1.0)
        assert flushing.is_alive()  # waiting for the lock, not failing
    finally:
        locker.communicate("release\n", timeout=30)
    flushing.join(timeout=60)
    assert not flushing.is_alive()
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [
        float(s) for s in range(500)
    ]
    client.close()


OUTAGE_PIPELINE = """
import threading
from ferryml.pipelines import pipeline, step

CALLS: list = []
BEGUN, GO_ON = threading.Event(), threading.Event()


@step
def load(n: int) -> list:
    CALLS.append("load")
    return list(range(n))


@step
def total(rows: list) -> int:
    CALLS.append("total")
    if not GO_ON.is_set():  # the first run's step outlives the database
        BEGUN.set()
        GO_ON.wait(60)
    return sum(rows)


@pipeline
def counting(n: int = 5):
    return total(load(n))
"""


def test_a_pipeline_run_cut_off_by_an_outage_ends_failed_and_resumes_from_the_cache(
    settings: Settings, outage: PrivateCluster, tmp_path: Path
) -> None:
    from ferryml.pipelines.engine import load_target, run_pipeline

    module = f"outage_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(OUTAGE_PIPELINE)
    sys.path.insert(0, str(tmp_path))
    try:
        pipeline = load_target(f"{module}:counting")
        steps = sys.modules[module]
        refused: list[BaseException] = []

        def run() -> None:
            try:
                run_pipeline(pipeline, settings=settings)
            except StoreUnavailable as e:
                refused.append(e)

        first = threading.Thread(target=run)
        first.start()
        assert steps.BEGUN.wait(60)
        outage.stop("fast")  # while the second step runs
        steps.GO_ON.set()
        first.join(120)
        assert not first.is_alive()
        assert "Cannot reach the store" in str(refused[0])
        outage.start()
        client = FerryClient(settings)  # writes the ends the journal kept
        try:
            experiments = [e.experiment_id for e in client.list_experiments()]
            runs = [
                r
                for r in client.search_runs(experiments, max_results=1000).runs
                if module in r.data.tags.get("ferry.pipeline.ref", "")
                or module in r.data.tags.get("ferry.step.ref", "")
            ]
        finally:
            client.close()
        statuses = sorted((r.data.tags["ferry.kind"], r.info.status.value) for r in runs)
        assert statuses == [("pipeline", "FAILED"), ("step", "FAILED"), ("step", "FINISHED")]
        (cut,) = [r for r in runs if r.data.tags["ferry.kind"] == "pipeline"]
        again = run_pipeline(pipeline, settings=settings, resume=cut.info.run_id)
        assert (again.status, again.output()) == ("FINISHED", 10)
        assert steps.CALLS == ["load", "total", "total"]  # load came from the cache
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
