"""Writing a batch of tracking records (metrics, params, tags, artifacts, inputs, ends)
in one transaction, idempotently."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text, tuple_, update

from ferryml.errors import InvalidArgument, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.records import (
    ArtifactRecord,
    EndRecord,
    InputRecord,
    MetricRecord,
    ParamRecord,
    Record,
    TagRecord,
)

__all__ = ["Copier", "sqlite_copier", "write_metric_rows", "write_records"]

Copier = Callable[[str], int]  # run id -> how many of its values were new


def write_records(engine: Engine, records: Sequence[Record], active: str | None = None) -> None:
    """Apply a batch of records in one transaction (see ``SqlStore.write_records``). With
    ``active``, the run every record names, checked in the same transaction: it must exist
    and be active, else nothing is written.

    Raises:
        NotFound: ``active`` names no run.
        InvalidArgument: ``active`` is deleted, or a record names another run.
    """
    metric_rows: list[Record] = []
    others: dict[type, list[Any]] = defaultdict(list)
    for record in records:
        if type(record) is MetricRecord:
            metric_rows.append(record)
        else:
            others[type(record)].append(record)
    run_ids = {r.run_id for r in records}
    if active is not None and run_ids - {active}:
        raise InvalidArgument(f"Records of another run than {active} in one batch.")
    with engine.execution_options(ferry_write=True).begin() as conn:
        if active is None:
            known = _existing_runs(conn, run_ids)
        else:
            _check_active(conn, active)
            known = {active}
        if known != run_ids:
            metric_rows = [r for r in metric_rows if r.run_id in known]
        _dialect.insert_ignore_fast(conn, t.metrics, metric_rows)
        _dialect.upsert(
            conn,
            t.latest_metrics,
            _latest(metric_rows),
            ("run_id", "key"),
            where=_newer,
        )
        _dialect.insert_ignore(conn, t.params, _rows(others[ParamRecord], known))
        _dialect.upsert(conn, t.tags, _rows(others[TagRecord], known), ("run_id", "key"))
        _dialect.upsert(
            conn, t.run_artifacts, _rows(others[ArtifactRecord], known), ("run_id", "path")
        )
        _dialect.insert_ignore(conn, t.run_inputs, _rows(others[InputRecord], known))
        for end in others[EndRecord]:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.run_id == end.run_id)
                .values(status=end.status, end_time=end.end_time, failure=end.failure)
            )


def write_metric_rows(engine: Engine, run_id: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Metric values of one existing run, as tuples in the ``metrics`` table's column order,
    in one transaction (see ``SqlStore.write_metric_rows``)."""
    if {row[0] for row in rows} != {run_id}:
        raise InvalidArgument(f"Metric rows of another run than {run_id} in one batch.")
    _refuse_nul_keys(run_id, {row[1] for row in rows})  # as the per-statement check would
    names = [c.name for c in t.metrics.columns]
    with engine.execution_options(ferry_write=True).begin() as conn:
        if not _existing_runs(conn, {run_id}):
            raise NotFound(f"Run {run_id!r} not found; create it before writing its metrics.")
        # The driver's own cursor: no per-row work of SQLAlchemy's or of its event hooks.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        columns = ", ".join(names)
        if conn.dialect.name == "sqlite":
            marks = ", ".join("?" * len(names))
            cursor.executemany(f"INSERT OR IGNORE INTO metrics ({columns}) VALUES ({marks})", rows)
        else:
            # COPY into a session's scratch table, then what is new: PostgreSQL's bulk path.
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS metrics_load "
                "(LIKE metrics INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cursor.copy(f"COPY metrics_load ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO metrics ({columns}) SELECT {columns} FROM metrics_load "  # noqa: S608
                "ON CONFLICT DO NOTHING"
            )
        cursor.close()
        _refresh_latest(conn, run_id)


@contextlib.contextmanager
def sqlite_copier(engine: Engine, database: str, select_sql: str) -> Iterator[Copier]:
    """One connection with ``database`` attached, copying runs' metric values from it
    (see ``SqlStore.sqlite_copier``)."""
    columns = ", ".join(c.name for c in t.metrics.columns)
    # Only the run's own values, whatever the SELECT returns: the run is checked once in
    # the transaction, not per value by the foreign key (a third of the copy's time).
    sql = (
        f"INSERT OR IGNORE INTO metrics ({columns}) SELECT {columns} "  # noqa: S608
        f"FROM ({select_sql}) WHERE run_id = ?"
    )
    nul = "SELECT key FROM latest_metrics WHERE run_id = ? AND instr(key, char(0))"

    def copy(conn: Connection, run_id: str) -> int:
        with conn.execution_options(ferry_write=True).begin():
            if not _existing_runs(conn, {run_id}):
                raise NotFound(f"Run {run_id!r} not found; create it before its metrics.")
            copied = conn.exec_driver_sql(sql, (run_id, run_id)).rowcount
            _refresh_latest(conn, run_id)
            _refuse_nul_keys(run_id, {k for (k,) in conn.exec_driver_sql(nul, (run_id,))})
        return int(copied)

    with engine.connect() as conn:
        # ATTACH and the pragma cannot change inside a transaction: before SQLAlchemy's.
        driver: Any = conn.connection.driver_connection
        driver.execute("ATTACH DATABASE ? AS source", (database,))
        driver.execute("PRAGMA foreign_keys = OFF")
        try:
            yield lambda run_id: _dialect.retry_locked(lambda: copy(conn, run_id))
        finally:
            driver.execute("PRAGMA foreign_keys = ON")
            driver.execute("DETACH DATABASE source")


def _best(column: str) -> str:
    return (
        f"(SELECT {column} FROM metrics m WHERE m.run_id = :r AND m.key = k.key "  # noqa: S608
        "ORDER BY m.step DESC, m.timestamp DESC, m.value DESC, m.is_nan DESC LIMIT 1)"
    )


# A run's latest value per key, from its stored values: the keys found by a skip-scan
# along the primary key (a seek per key, not a pass over the history), then per key the
# value at the highest (step, timestamp, value). One statement, for both databases.
_REFRESH_LATEST = text(
    "WITH RECURSIVE k(key) AS (SELECT min(key) FROM metrics WHERE run_id = :r UNION ALL "
    "SELECT (SELECT min(key) FROM metrics WHERE run_id = :r AND key > k.key) FROM k "
    "WHERE k.key IS NOT NULL) "
    "INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan) "
    f"SELECT :r, k.key, {_best('step')}, {_best('timestamp')}, {_best('value')}, "
    f"{_best('is_nan')} FROM k WHERE k.key IS NOT NULL "
    "ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp = "
    "excluded.timestamp, value = excluded.value, is_nan = excluded.is_nan "
    "WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step "
    "AND excluded.timestamp >= latest_metrics.timestamp)"
)


def _refresh_latest(conn: Connection, run_id: str) -> None:
    """The run's ``latest_metrics`` from its stored values (``_REFRESH_LATEST``)."""
    conn.execute(_REFRESH_LATEST, {"r": run_id})


def _refuse_nul_keys(run_id: str, keys: set[str]) -> None:
    if any("\x00" in key for key in keys):
        raise InvalidArgument(f"A metric key of run {run_id} holds a NUL character; remove it.")


def _newer(table: Any, new: Any) -> Any:
    """A latest value replaced only by a later one: by step, then time, then (a tie, as
    MLflow breaks it and as ``_REFRESH_LATEST`` does) the higher value."""
    return tuple_(new.step, new.timestamp, new.value, new.is_nan) >= tuple_(
        table.c.step, table.c.timestamp, table.c.value, table.c.is_nan
    )


# FOR SHARE on PostgreSQL: a run deleted meanwhile waits for the write, not the other way
# (SQLite's write transaction already holds the whole database).
_RUN_STAGE = (
    select(t.runs.c.lifecycle_stage)
    .where(t.runs.c.run_id == bindparam("run_id"))
    .with_for_update(read=True)
)


def _existing_runs(conn: Connection, run_ids: set[str]) -> set[str]:
    if not run_ids:
        return set()
    if len(run_ids) == 1:  # the usual batch, and an IN list costs a compile per call
        (run_id,) = run_ids
        found = conn.execute(_RUN_STAGE, {"run_id": run_id}).first()
        return {run_id} if found is not None else set()
    rows = conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id.in_(run_ids)))
    return {r[0] for r in rows}


def _check_active(conn: Connection, run_id: str) -> None:
    found = conn.execute(_RUN_STAGE, {"run_id": run_id}).first()
    if found is None:
        raise NotFound(f"Run {run_id!r} not found. See `ferry runs list`.")
    if found[0] != "active":
        raise InvalidArgument(
            f"The run {run_id} must be in the 'active' state. Current state is {found[0]}; "
            "restore it to log to it."
        )


def _latest(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Per run and key, the row with the highest (step, timestamp, value)."""
    return [row._asdict() for row in _latest_rows(rows)]


def _latest_rows(rows: Sequence[Any]) -> list[Any]:
    best: dict[tuple[str, str], Any] = {}
    for row in rows:
        key = (row[0], row[1])
        current = best.get(key)
        if current is None or row[2:6] >= current[2:6]:
            best[key] = row
    return list(best.values())


def _rows(records: list[Any], known: set[str]) -> list[dict[str, Any]]:
    return [r._asdict() for r in records if r.run_id in known]
