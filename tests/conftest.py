"""Shared fixtures: a fresh store per test, on SQLite and on the PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import ferryml as ferry
from ferryml.config import Settings
from ferryml.tracking.client import FerryClient

PG_ADMIN_URL = os.environ.get(
    "FERRY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"ferry_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - any connection failure means "not available"
        admin.dispose()
        pytest.skip(f"PostgreSQL at {make_url(PG_ADMIN_URL).host}:5432 is not reachable: {e}")
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file, or a new schema in the session's database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'ferry.db'}"
        return
    database = request.getfixturevalue("pg_database")
    schema = f"s_{uuid.uuid4().hex[:12]}"
    engine = create_engine(database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        store_url=store_url,
        artifacts_url=(tmp_path / "artifacts").as_uri(),
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings.resolve(home=tmp_path / "home", cwd=tmp_path, environ={})


@pytest.fixture
def client(settings: Settings) -> Iterator[FerryClient]:
    c = FerryClient(settings)
    yield c
    c.close()


@pytest.fixture
def fluent(settings: Settings) -> Iterator[Settings]:
    """The fluent API pointed at this test's store."""
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    yield settings
    while ferry.active_run() is not None:
        ferry.end_run()
    ferry.configure(
        home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url
    )  # closes the client and its journal
