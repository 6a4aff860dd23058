"""Writing a batch of tracking records (metrics, params, tags, artifacts, inputs, ends)
in one transaction, idempotently."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

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

__all__ = ["write_records"]


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


def _existing_runs(conn: Connection, run_ids: set[str]) -> set[str]:
    if not run_ids:
        return set()
    rows = conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id.in_(run_ids)))
    return {r[0] for r in rows}


def _latest(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Per run and key, the row with the highest (step, timestamp)."""
    best: dict[tuple[str, str], Any] = {}
    for row in rows:
        key = (row[0], row[1])
        current = best.get(key)
        if current is None or (row[2], row[3]) >= (current[2], current[3]):
            best[key] = row
    return [row._asdict() for row in best.values()]


def _rows(records: list[Any], known: set[str]) -> list[dict[str, Any]]:
    return [r._asdict() for r in records if r.run_id in known]
