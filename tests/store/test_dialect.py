"""Retrying a write that SQLite refused because another process held the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from ferryml.store import _dialect


def _impatient(path: Path) -> Engine:
    """The store's engine, giving up on a lock after 10 ms instead of a minute."""
    engine = _dialect.make_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=10"))
    return engine


def test_a_write_is_retried_while_the_database_is_locked(tmp_path: Path) -> None:
    engine = _impatient(tmp_path / "locked.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    tries = []

    def write() -> int:
        tries.append(1)
        if len(tries) == 3:
            holder.execute("COMMIT")  # the other writer finishes
        with engine.execution_options(ferry_write=True).begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        return len(tries)

    try:
        assert _dialect.retry_locked(write) == 3
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        holder.close()
        engine.dispose()


def test_a_lock_held_past_every_attempt_raises_the_lock_error(tmp_path: Path) -> None:
    engine = _impatient(tmp_path / "locked.db")
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    tries = []

    def write() -> None:
        tries.append(1)
        with engine.execution_options(ferry_write=True).begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))

    try:
        with pytest.raises(OperationalError, match="locked"):
            _dialect.retry_locked(write, attempts=3)
        assert len(tries) == 3
    finally:
        holder.close()
        engine.dispose()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    tries = []

    def broken() -> None:
        tries.append(1)
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: t"))

    with pytest.raises(OperationalError, match="no such table"):
        _dialect.retry_locked(broken)
    assert tries == [1]
