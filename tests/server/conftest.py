"""A real ``ferry server`` over a fresh store (SQLite and PostgreSQL) for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from team_world import TeamServer, running_server


@pytest.fixture
def team_server(store_url: str, tmp_path: Path) -> Iterator[TeamServer]:
    """A server of this test's own."""
    yield from running_server(store_url, tmp_path)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def shared_team_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, make_store: Any
) -> Iterator[TeamServer]:
    """One server for the tests of a module that do not depend on each other's records."""
    folder = tmp_path_factory.mktemp("team")
    with make_store(request.param, folder, request) as store_url:
        yield from running_server(store_url, folder)


@pytest.fixture
def client_dir(tmp_path: Path) -> Path:
    """A client's working folder, with no store of its own."""
    folder = tmp_path / "client"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def sqlite_team_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, make_store: Any
) -> Iterator[TeamServer]:
    """One server over SQLite for a module's tests."""
    folder = tmp_path_factory.mktemp("team")
    with make_store("sqlite", folder, request) as store_url:
        yield from running_server(store_url, folder)
