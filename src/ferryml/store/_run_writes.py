"""Writing a batch of tracking records (metrics, params, tags, artifacts, inputs, ends)
in one transaction, idempotently."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

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

__all__ = ["write_metric_rows", "write_records"]


def write_records(engine: Engine, records: Sequence[Record]) -> None:
    """Apply a batch of records in one transaction (see ``SqlStore.write_records``)."""
    metric_rows: list[Record] = []
    others: dict[type, list[Any]] = defaultdict(list)
    for record in records:
        if type(record) is MetricRecord:
            metric_rows.append(record)
        else:
            others[type(record)].append(record)
    with engine.execution_options(ferry_write=True).begin() as conn:
        run_ids = {r.run_id for r in records}
        known = _existing_runs(conn, run_ids)
        if known != run_ids:
            metric_rows = [r for r in metric_rows if r.run_id in known]
        _dialect.insert_ignore_fast(conn, t.metrics, metric_rows)
        _dialect.upsert(
            conn,
            t.latest_metrics,
            _latest(metric_rows),
            ("run_id", "key"),
            where=lambda tbl, new: or_(
                new.step > tbl.c.step,
                and_(new.step == tbl.c.step, new.timestamp >= tbl.c.timestamp),
            ),
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
    latest = _latest_rows(rows)  # one pass, which also gives the keys and runs to check
    if {row[0] for row in latest} != {run_id}:
        raise InvalidArgument(f"Metric rows of another run than {run_id} in one batch.")
    if any("\x00" in row[1] for row in latest):  # what the store's per-statement check refuses
        raise InvalidArgument(f"A metric key of run {run_id} holds a NUL character; remove it.")
    names = [c.name for c in t.metrics.columns]
    with engine.execution_options(ferry_write=True).begin() as conn:
        if not _existing_runs(conn, {run_id}):
            raise NotFound(f"Run {run_id!r} not found; create it before writing its metrics.")
        # The driver's own cursor: no per-row work of SQLAlchemy's or of its event hooks.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        mark = "?" if conn.dialect.name == "sqlite" else "%s"
        columns, marks = ", ".join(names), ", ".join([mark] * len(names))
        if conn.dialect.name == "sqlite":
            sql = f"INSERT OR IGNORE INTO metrics ({columns}) VALUES ({marks})"
        else:
            sql = f"INSERT INTO metrics ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        cursor.executemany(sql, rows)
        cursor.close()
        _dialect.upsert(
            conn,
            t.latest_metrics,
            [dict(zip(names, row, strict=True)) for row in latest],
            ("run_id", "key"),
            where=lambda tbl, new: or_(
                new.step > tbl.c.step,
                and_(new.step == tbl.c.step, new.timestamp >= tbl.c.timestamp),
            ),
        )


def _existing_runs(conn: Connection, run_ids: set[str]) -> set[str]:
    if not run_ids:
        return set()
    rows = conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id.in_(run_ids)))
    return {r[0] for r in rows}


def _latest(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Per run and key, the row with the highest (step, timestamp)."""
    return [row._asdict() for row in _latest_rows(rows)]


def _latest_rows(rows: Sequence[Any]) -> list[Any]:
    best: dict[tuple[str, str], Any] = {}
    for row in rows:
        key = (row[0], row[1])
        current = best.get(key)
        if current is None or (row[2], row[3]) >= (current[2], current[3]):
            best[key] = row
    return list(best.values())


def _rows(records: list[Any], known: set[str]) -> list[dict[str, Any]]:
    return [r._asdict() for r in records if r.run_id in known]
