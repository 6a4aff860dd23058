"""Datasets, the step cache and schedules through a team server. Their stores' contracts,
each test run against the SQL implementation and the HTTP one (through a real ``ferry
server``), so callers cannot tell the two apart; then the ``ferry`` commands end to end.

Everything here shares one server and its database, so each test picks names of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from team_world import TeamServer

from ferryml.errors import InvalidArgument, NotFound
from ferryml.store.base import DatasetStore
from ferryml.store.http import ServerClient
from ferryml.store.http_data import HttpDatasetStore
from ferryml.store.sql import SqlStore
from ferryml.store.sql_data import SqlDatasetStore

pytestmark = pytest.mark.e2e

IMPLEMENTATIONS = ["sql", "http"]


def _client(server: TeamServer) -> ServerClient:
    return ServerClient(server.url, server.tokens["writer"])


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
    # Bob's artifacts are the server's (the default): checkout streams them from there.
    bob = _project(tmp_path / "bob")
    restored = _ok(ferry(bob, "data", "checkout", f"{folder}@1"))
    assert restored.startswith(f"{folder}: version 1, 2 files written")
    assert {f: (bob / folder / f).read_bytes() for f in files} == files
    # Carol pulls them into her own local store, then checks them out from there.
    carol = _project(tmp_path / "carol")
    local = {"FERRY_ARTIFACTS": str(carol / "blobs")}
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
