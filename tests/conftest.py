"""Shared fixtures: a fresh store per test, on SQLite and on the PostgreSQL server, and an
S3 emulator (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from moto.server import ThreadedMotoServer
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import ferryml as ferry
from ferryml.cli import main
from ferryml.config import Settings
from ferryml.tracking.client import FerryClient
from private_postgres import PrivateCluster, unavailable_reason

# Property tests: no deadline (the machine is shared and loaded), no example database left
# in the clone, health checks that only say "slow" off; each test sets its own modest
# max_examples, since the suite has a time budget.
hypothesis_settings.register_profile(
    "ferryml",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
hypothesis_settings.load_profile("ferryml")

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


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this session's own (``initdb``/``pg_ctl`` in a temp folder),
    for tests that stop, crash and restart the database itself. Running when handed out;
    a test that stops it starts it again."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite store migrated once, copied for each test that wants a store."""
    from ferryml.store.sql import SqlStore

    path = tmp_path_factory.mktemp("template") / "ferry.db"
    SqlStore(f"sqlite:///{path}").open().close()
    return path


@pytest.fixture(scope="session")
def postgres_ddl() -> str:
    """The SQL that builds the newest schema, from the tables the code uses (a test keeps
    them equal to what the migrations build), as one script run per test."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from ferryml.store._schema import metadata
    from ferryml.store.sql import SCHEMA_HEAD

    dialect = postgresql.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements += [str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes]
    statements.append(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    statements.append(f"INSERT INTO alembic_version VALUES ('{SCHEMA_HEAD}')")
    return ";\n".join(statements)


@contextmanager
def fresh_store(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty store at the newest schema: a SQLite file in ``folder``, or a new
    schema in the session's database. Built from a template, not by the migrations, unless
    the test is marked ``migrations`` (running them for each of a thousand tests took
    minutes)."""
    migrate = request.node.get_closest_marker("migrations") is not None
    if kind == "sqlite":
        path = folder / "store" / "ferry.db"
        if not migrate:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    database = request.getfixturevalue("pg_database")
    schema = f"s_{uuid.uuid4().hex[:12]}"
    engine = create_engine(database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        if not migrate:
            ddl = request.getfixturevalue("postgres_ddl")
            conn.exec_driver_sql(f'SET search_path TO "{schema}";\n{ddl}')
    try:
        yield f"{database}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


STORE_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def make_store() -> Callable[[str, Path, pytest.FixtureRequest], AbstractContextManager[str]]:
    """``fresh_store``, for fixtures of a wider scope than a test."""
    return fresh_store


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store for each test, on SQLite and on PostgreSQL."""
    with fresh_store(request.param, tmp_path, request) as url:
        yield url


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
    yield from _fluent(settings)


@pytest.fixture
def sqlite_fluent(sqlite_settings: Settings) -> Iterator[Settings]:
    """The fluent API pointed at a fresh SQLite store, for what is tested on one kind."""
    yield from _fluent(sqlite_settings)


def _fluent(settings: Settings) -> Iterator[Settings]:
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    yield settings
    while ferry.active_run() is not None:
        ferry.end_run()
    ferry.configure(
        home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url
    )  # closes the client and its journal


class Result(NamedTuple):
    """What one ``ferry`` command gave: its exit code and what it printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Runs ``ferry *args`` in this process: ``cli("--home", str(home), "runs", "list")``.
    The exit code is the one it exits with, 0 when it returns."""

    def run(*args: str) -> Result:
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


S3_BUCKET = "ferry-test-artifacts"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server holding an empty bucket, ``s3_bucket``."""
    # Port 0: the OS picks a free port while binding, so no other process can take it
    # in between (and moto's start() would wait forever after a failed bind).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        _client(url).create_bucket(Bucket=S3_BUCKET)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    """Name of the emulator's bucket."""
    return S3_BUCKET


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 client for the emulator, to look at the bucket from outside the store."""
    return _client(s3_endpoint)


@pytest.fixture(scope="session")
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    """``storage_options`` that point s3fs at the emulator."""
    return {
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        "key": "testing",
        "secret": "testing",
    }


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment variables that point any S3 client (s3fs included) at the emulator, as
    a user points ferryml at their own S3-compatible store; returns the endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_endpoint


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A client of a real Dask LocalCluster of two in-process workers, one per test module."""
    distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=False,
            threads_per_worker=1,
            dashboard_address="127.0.0.1:0",  # port 8787 may be another cluster's
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
