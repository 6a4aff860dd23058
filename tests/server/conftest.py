"""A real ``ferry server`` over a fresh store (SQLite and PostgreSQL) for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from team_world import TeamServer, add_users, free_port


@pytest.fixture
def team_server(store_url: str, tmp_path: Path) -> Iterator[TeamServer]:
    server = TeamServer(
        store_url, (tmp_path / "server-artifacts").as_uri(), tmp_path / "server-home", free_port()
    )
    server.tokens = add_users(store_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client_dir(tmp_path: Path) -> Path:
    """A client's working folder, with no store of its own."""
    folder = tmp_path / "client"
    folder.mkdir()
    return folder
