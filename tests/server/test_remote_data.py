"""Datasets, the step cache and schedules through a team server. Their stores' contracts,
each test run against the SQL implementation and the HTTP one (through a real ``ferry
server``), so callers cannot tell the two apart; then the ``ferry`` commands end to end.

Everything here shares one server and its database, so each test picks names of its own."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from team_world import TeamServer

from ferryml.config import Settings
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.pipelines.schedule import claim_due, create_schedule, run_scheduler
from ferryml.store.base import DatasetStore, ScheduleStore, StepCache
from ferryml.store.entities import CachedOutput
from ferryml.store.http import ServerClient
from ferryml.store.http_data import HttpDatasetStore, HttpScheduleStore, HttpStepCache
from ferryml.store.sql import SqlStore
from ferryml.store.sql_data import SqlDatasetStore
from ferryml.store.sql_pipelines import SqlStepCache
from ferryml.store.sql_schedules import SqlScheduleStore

pytestmark = pytest.mark.e2e

IMPLEMENTATIONS = ["sql", "http"]


def _client(server: TeamServer, role: str = "writer") -> ServerClient:
    return ServerClient(server.url, server.tokens[role])


@pytest.fixture
def name() -> str:
    return f"team/ds-{uuid.uuid4().hex[:8]}"


def _digest(char: str) -> str:
    return char * 64


# -- datasets -------------------------------------------------------------------------------


@pytest.fixture(params=IMPLEMENTATIONS)
def datasets(
    request: pytest.FixtureRequest, sqlite_team_server: TeamServer
) -> Iterator[DatasetStore]:
    store: DatasetStore = (
        SqlDatasetStore(SqlStore(sqlite_team_server.store_url).open())
        if request.param == "sql"
        else HttpDatasetStore(_client(sqlite_team_server))
    )
    yield store
    store.close()


def _add(store: DatasetStore, name: str, char: str, **extra: object) -> int:
    return store.create_dataset_version(
        name,
        kind="file",
        manifest_digest=_digest(char),
        files=1,
        size=3,
        **extra,  # type: ignore[arg-type]
    ).version


def test_versions_are_numbered_from_one_and_read_back_whole(
    datasets: DatasetStore, name: str
) -> None:
    first = datasets.create_dataset_version(
        name,
        kind="table",
        manifest_digest=_digest("a"),
        files=1,
        size=1234,
        source="data/train.csv",
        rows=10,
        schema='{"columns": []}',
        profile_digest=_digest("b"),
    )
    assert (first.name, first.version, first.ref) == (name, 1, f"{name}@1")
    assert _add(datasets, name, "c") == 2
    assert datasets.get_dataset_version(name, 1) == first
    assert datasets.get_dataset_version(name).version == 2
    assert [v.version for v in datasets.list_dataset_versions(name)] == [1, 2]
    latest = {v.name: v.version for v in datasets.list_datasets()}
    assert latest[name] == 2


def test_a_deleted_version_is_gone_and_its_number_not_reused(
    datasets: DatasetStore, name: str
) -> None:
    assert [_add(datasets, name, c) for c in "abc"] == [1, 2, 3]
    datasets.delete_dataset_version(name, 3)
    assert datasets.get_dataset_version(name).version == 2
    with pytest.raises(NotFound, match=f"Version 3 of dataset '{name}' was deleted"):
        datasets.get_dataset_version(name, 3)
    assert _add(datasets, name, "d") == 4


def test_unknown_datasets_and_versions_are_not_found_with_where_to_look(
    datasets: DatasetStore, name: str
) -> None:
    with pytest.raises(NotFound, match=f"Dataset '{name}' not found. See `ferry data ls`."):
        datasets.get_dataset_version(name)
    with pytest.raises(NotFound, match=f"Dataset '{name}' not found"):
        datasets.list_dataset_versions(name)
    _add(datasets, name, "a")
    with pytest.raises(NotFound, match=f"Dataset '{name}' has no version 7"):
        datasets.get_dataset_version(name, 7)
    with pytest.raises(NotFound, match=f"Dataset '{name}' has no version 9"):
        datasets.delete_dataset_version(name, 9)


def test_a_name_that_breaks_the_rule_is_refused(datasets: DatasetStore) -> None:
    with pytest.raises(InvalidArgument, match="Dataset name 'bad name' is invalid"):
        _add(datasets, "bad name", "a")


def test_names_that_look_like_routes_are_names(datasets: DatasetStore, name: str) -> None:
    tricky = f"{name}/versions/latest"
    _add(datasets, tricky, "a")
    _add(datasets, f"{name}/versions", "b")
    assert datasets.get_dataset_version(tricky).manifest_digest == _digest("a")
    assert [v.manifest_digest for v in datasets.list_dataset_versions(f"{name}/versions")] == [
        _digest("b")
    ]


# -- the step cache -----------------------------------------------------------------------


@pytest.fixture(params=IMPLEMENTATIONS)
def step_cache(
    request: pytest.FixtureRequest, sqlite_team_server: TeamServer
) -> Iterator[StepCache]:
    cache: StepCache = (
        SqlStepCache(SqlStore(sqlite_team_server.store_url).open())
        if request.param == "sql"
        else HttpStepCache(_client(sqlite_team_server))
    )
    yield cache
    cache.close()


def test_the_step_cache_answers_what_was_put_and_none_for_the_rest(step_cache: StepCache) -> None:
    key, run_id = uuid.uuid4().hex * 2, uuid.uuid4().hex
    assert step_cache.get(key) is None
    step_cache.put(key, "train", _digest("a"), "json", run_id)
    assert step_cache.get(key) == CachedOutput(_digest("a"), "json", run_id)
    step_cache.put(key, "train", _digest("b"), "parquet", None)  # a rerun replaces it
    assert step_cache.get(key) == CachedOutput(_digest("b"), "parquet", None)


# -- schedules ----------------------------------------------------------------------------

MINUTE = 60_000
T0 = 1_704_078_000_000  # 2024-01-01 03:00:00 UTC


@pytest.fixture(params=IMPLEMENTATIONS)
def schedules(
    request: pytest.FixtureRequest, sqlite_team_server: TeamServer
) -> Iterator[ScheduleStore]:
    store: ScheduleStore = (
        SqlScheduleStore(SqlStore(sqlite_team_server.store_url).open())
        if request.param == "sql"
        else HttpScheduleStore(_client(sqlite_team_server, "maintainer"))
    )
    yield store
    store.close()


@pytest.fixture
def schedule(sqlite_team_server: TeamServer) -> Iterator[str]:
    name = f"nightly-{uuid.uuid4().hex[:8]}"
    yield name
    store = SqlScheduleStore(SqlStore(sqlite_team_server.store_url).open())
    with contextlib.suppress(NotFound):  # so that no other test's scheduler finds it due
        store.delete_schedule(name)
    store.close()


def _mine(claimed: list[Any], name: str) -> list[Any]:
    return [s for s in claimed if s.name == name]  # other tests' schedules may be due too


def test_a_schedule_is_due_once_per_occurrence_and_records_how_its_run_ended(
    schedules: ScheduleStore, schedule: str
) -> None:
    created = create_schedule(
        schedules, schedule, target="m:p", cron="0 3 * * *", params={"lr": "0.1"}, now_ms=T0 - 1
    )
    assert (created.next_run_time, created.params) == (T0, {"lr": "0.1"})
    assert schedules.get_schedule(schedule) == created
    assert schedule in [s.name for s in schedules.list_schedules()]
    assert _mine(claim_due(schedules, T0 - 1), schedule) == []
    [claimed] = _mine(claim_due(schedules, T0 + 5_000), schedule)
    assert (claimed.last_status, claimed.last_run_time) == ("RUNNING", T0 + 5_000)
    assert claimed.next_run_time == T0 + 24 * 60 * MINUTE
    assert _mine(claim_due(schedules, T0 + 6_000), schedule) == []  # taken already
    run_id = uuid.uuid4().hex
    assert schedules.record_result(schedule, run_id, "FINISHED", run_time=T0 + 5_000)
    assert not schedules.record_result(schedule, "0" * 32, "FAILED", run_time=T0)  # stale
    found = schedules.get_schedule(schedule)
    assert (found.last_run_id, found.last_status) == (run_id, "FINISHED")


def test_two_stores_claiming_one_occurrence_give_it_to_one(
    schedules: ScheduleStore, schedule: str, sqlite_team_server: TeamServer
) -> None:
    create_schedule(schedules, schedule, target="m:p", cron="0 3 * * *", now_ms=T0 - 1)
    [due] = _mine(schedules.list_due(T0), schedule)
    other = SqlScheduleStore(SqlStore(sqlite_team_server.store_url).open())
    try:
        assert other.claim(schedule, due=T0, next_run_time=T0 + 1, now_ms=T0) is not None
    finally:
        other.close()
    assert schedules.claim(schedule, due=due.next_run_time, next_run_time=T0 + 2, now_ms=T0) is None


def test_schedule_errors_name_what_to_do(schedules: ScheduleStore, schedule: str) -> None:
    create_schedule(schedules, schedule, target="m:p", cron="0 3 * * *")
    with pytest.raises(AlreadyExists, match=f"Schedule '{schedule}' already exists. Pick"):
        create_schedule(schedules, schedule, target="m:q", cron="0 4 * * *")
    schedules.delete_schedule(schedule)
    missing = f"Schedule '{schedule}' not found. See `ferry schedule list`."
    for call in (schedules.get_schedule, schedules.delete_schedule):
        with pytest.raises(NotFound) as raised:
            call(schedule)
        assert str(raised.value) == missing
    with pytest.raises(NotFound):
        schedules.record_result(schedule, None, "FAILED")
    with pytest.raises(InvalidArgument, match="Schedule name 'no good' is invalid"):
        create_schedule(schedules, "no good", target="m:p", cron="0 3 * * *")


# -- the commands, end to end -------------------------------------------------------------


class Ferry:
    """Runs ``ferry`` commands in this process, as a client of ``server`` working in a folder."""

    def __init__(
        self, server: TeamServer, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.server, self.cli, self.monkeypatch = server, cli, monkeypatch

    def __call__(self, cwd: Path, *args: str, role: str | None = "writer", **env: str) -> Any:
        for key in [k for k in os.environ if k.startswith("FERRY_")]:
            self.monkeypatch.delenv(key)
        self.monkeypatch.setenv("FERRY_TRACKING_URI", self.server.url)
        if role is not None:
            self.monkeypatch.setenv("FERRY_TOKEN", self.server.tokens[role])
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        self.monkeypatch.chdir(cwd)
        return self.cli(*args)


@pytest.fixture
def ferry(
    sqlite_team_server: TeamServer, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Ferry:
    return Ferry(sqlite_team_server, cli, monkeypatch)


def _ok(result: Any) -> str:
    assert result.code == 0, result.err
    return result.out


def _project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "ferry.yaml").write_text("{}\n")
    return folder


def test_data_travels_through_the_server_with_add_push_pull_and_checkout(
    ferry: Ferry, tmp_path: Path
) -> None:
    server = ferry.server
    folder = f"data/{uuid.uuid4().hex[:8]}"
    # Alice keeps blobs in a local artifact store and pushes them to the server.
    alice = _project(tmp_path / "alice")
    local = {"FERRY_ARTIFACTS": str(alice / "blobs")}
    (alice / folder).mkdir(parents=True)
    files = {"a.txt": b"alpha\n", "b.bin": os.urandom(1024 * 1024 + 7)}
    for file, data in files.items():
        (alice / folder / file).write_bytes(data)
    added = _ok(ferry(alice, "data", "add", folder, **local))
    assert added.startswith(f"{folder}@1: 2 files")
    with server.http("reader") as reader:
        version = reader.get(f"/api/v1/datasets/{folder}/versions/latest").json()
        assert version["version"] == 1 and version["files"] == 2
        assert reader.head(f"/api/v1/blobs/{version['manifest_digest']}").status_code == 404
    pushed = _ok(ferry(alice, "data", "push", **local))
    assert pushed.startswith("pushed 3 blobs (") and server.url in pushed
    assert _ok(ferry(alice, "data", "push", **local)).startswith("pushed 0 blobs")
    repair = ferry(alice, "data", "push", "--repair", **local)
    assert repair.code == 2 and repair.err.startswith("error: --repair reads a remote store's")
    # Bob's artifacts are the server's (the default): checkout streams them from there.
    bob = _project(tmp_path / "bob")
    restored = _ok(ferry(bob, "data", "checkout", f"{folder}@1"))
    assert restored.startswith(f"{folder}: version 1, 2 files written")
    assert {f: (bob / folder / f).read_bytes() for f in files} == files
    # Carol pulls them into her own local store, then checks them out from there.
    carol = _project(tmp_path / "carol")
    local = {"FERRY_ARTIFACTS": str(carol / "blobs")}
    early = ferry(carol, "data", "checkout", f"{folder}@1", **local)
    assert early.code == 1 and "Fetch them with `ferry data pull` (from the team" in early.err
    pulled = _ok(ferry(carol, "data", "pull", f"{folder}@1", **local))
    assert pulled.startswith("pulled 3 blobs")
    _ok(ferry(carol, "data", "checkout", f"{folder}@1", **local))
    assert {f: (carol / folder / f).read_bytes() for f in files} == files
    assert _ok(ferry(carol, "data", "log", folder, "--json")).count('"version": 1') == 1


def test_data_commands_need_a_token_and_a_writer_to_add(ferry: Ferry, tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    (project / "x.csv").write_text("a,b\n1,2\n")
    refused = ferry(project, "data", "add", "x.csv", role="reader")
    assert refused.code == 1
    assert "has the role reader; this needs writer" in refused.err
    anonymous = ferry(project, "data", "ls", role=None)
    assert anonymous.code == 1 and anonymous.err.startswith("error: No token")


def test_a_pipeline_runs_through_the_server_and_a_second_run_comes_from_its_cache(
    ferry: Ferry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "pipelines"))
    project = _project(tmp_path / "p")
    calls = tmp_path / "calls.txt"
    target, rows = "example_pipelines:training", f"rows={uuid.uuid4().int % 1000 + 5}"
    first = _ok(ferry(project, "pipeline", "run", target, "-p", rows, FERRY_TEST_CALLS=str(calls)))
    assert "training FINISHED" in first and "4 steps, 0 from the cache" in first
    assert sorted(calls.read_text().split()) == ["features", "load", "stats", "train"]
    calls.unlink()
    again = _ok(ferry(project, "pipeline", "run", target, "-p", rows, FERRY_TEST_CALLS=str(calls)))
    assert "4 steps, 4 from the cache" in again and not calls.exists()
    run_id = again.split("run ")[1].split(",")[0]
    with ferry.server.http("reader") as reader:
        run = reader.get(f"/api/v1/runs/{run_id}").json()
    assert run["data"]["tags"]["ferry.kind"] == "pipeline" and run["info"]["user"] == "writer"
    shown = _ok(ferry(project, "pipeline", "show", run_id, "--json", role="reader"))
    assert shown.count('"cache": "hit"') == 4


def test_schedules_through_the_server_need_a_maintainer_to_change_and_run_from_any_writer(
    ferry: Ferry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "pipelines"))
    project = _project(tmp_path / "p")
    args = ("schedule", "add", schedule, "scheduled_example:tiny", "--cron", "* * * * *")
    refused = ferry(project, *args, "-p", "x=3")
    assert refused.code == 1 and "has the role writer; this needs maintainer" in refused.err
    added = _ok(ferry(project, *args, "-p", "x=3", role="maintainer"))
    assert added.startswith(f"Scheduled {schedule!r}: scheduled_example:tiny at '* * * * *'")
    listed = _ok(ferry(project, "schedule", "list", "--json", role="reader"))
    assert schedule in listed
    # The scheduler (a writer) finds it due a minute later and records its run on the server.
    store = HttpScheduleStore(_client(ferry.server, "maintainer"))
    try:
        due = store.get_schedule(schedule).next_run_time
        writer = Settings.resolve(
            cwd=project,
            environ={
                "FERRY_TRACKING_URI": ferry.server.url,
                "FERRY_TOKEN": ferry.server.tokens["writer"],
            },
        )
        ran_all = run_scheduler(writer, once=True, now=lambda: due / 1000 + 1)
        [ran] = [r for r in ran_all if r.schedule == schedule]
        found = store.get_schedule(schedule)
    finally:
        store.close()
    assert ran.status == "FINISHED" and (found.last_run_id, found.last_status) == (
        ran.run_id,
        "FINISHED",
    )
    assert ferry(project, "schedule", "remove", schedule).code == 1
    assert _ok(ferry(project, "schedule", "remove", schedule, role="maintainer"))
    anonymous = ferry(project, "schedule", "list", role=None)
    assert anonymous.code == 1 and anonymous.err.startswith("error: No token")
