"""``PredictionStore`` over the same SQL database as the tracking store: the index of the
prediction log's Parquet partitions, and the feedback labels joined to predictions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select

from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.loop import Feedback, PredictionPartition
from ferryml.store.sql import StorePart

__all__ = ["Feedback", "PredictionPartition", "SqlPredictionStore"]

# Bound parameters per statement stay far below SQLite's and psycopg's limits.
_CHUNK = 1000


class SqlPredictionStore(StorePart):
    """Prediction partitions and feedback in an opened ``SqlStore``'s database.

    Example:
        >>> predictions = SqlPredictionStore(SqlStore("sqlite:///.ferry/ferry.db").open())
    """

    # -- partitions ----------------------------------------------------------------------

    def create_partitions(self, partitions: Sequence[PredictionPartition]) -> None:
        """Index partitions, all or none; indexing one again changes nothing."""
        if not partitions:
            return
        now = int(time.time() * 1000)
        rows = [_row(p, now) for p in partitions]

        def create() -> None:
            with self._write() as conn:
                _dialect.insert_ignore(conn, t.prediction_partitions, rows)

        _dialect.retry_locked(create)

    def list_partitions(
        self, deployment: str, *, since: int | None = None, until: int | None = None
    ) -> list[PredictionPartition]:
        """Partitions of ``deployment`` that may hold rows with ``since <= time < until``
        (ms), oldest first."""
        p = t.prediction_partitions.c
        stmt = select(t.prediction_partitions).where(p.deployment == deployment)
        if since is not None:
            stmt = stmt.where(p.max_time >= since)
        if until is not None:
            stmt = stmt.where(p.min_time < until)
        with self._store.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(p.min_time, p.digest)).all()
        return [_partition(r) for r in rows]

    def list_deployments(self) -> list[str]:
        """Every deployment with logged predictions, by name."""
        p = t.prediction_partitions.c
        with self._store.engine.connect() as conn:
            return list(
                conn.execute(select(p.deployment).distinct().order_by(p.deployment)).scalars()
            )

    def search_partitions_by_id(self, lowest: str, highest: str) -> list[PredictionPartition]:
        """Partitions whose id range overlaps ``[lowest, highest]``: the only ones that can
        hold those ids or any between them."""
        p = t.prediction_partitions.c
        stmt = select(t.prediction_partitions).where(
            p.max_id >= lowest.encode(), p.min_id <= highest.encode()
        )
        with self._store.engine.connect() as conn:
            return [_partition(r) for r in conn.execute(stmt.order_by(p.min_id))]

    def replace_partitions(self, old: Sequence[str], new: Sequence[PredictionPartition]) -> bool:
        """Swap the partitions of digests ``old`` for ``new`` in one transaction; False, and
        nothing changed, if one of ``old`` is no longer indexed."""
        if not old:
            raise ValueError("replace_partitions needs the digests of the partitions it replaces")
        p = t.prediction_partitions
        now = int(time.time() * 1000)
        rows = [_row(x, now) for x in new]

        class _Lost(Exception):
            pass

        def swap() -> bool:
            try:
                with self._write() as conn:
                    gone = 0
                    for chunk in _chunks(list(dict.fromkeys(old))):
                        gone += conn.execute(p.delete().where(p.c.digest.in_(chunk))).rowcount
                    if gone != len(set(old)):
                        raise _Lost  # rolls the deletes back
                    if rows:
                        conn.execute(p.insert(), rows)
            except _Lost:
                return False
            return True

        return _dialect.retry_locked(swap)

    # -- feedback ------------------------------------------------------------------------

    def upsert_feedback(self, rows: Sequence[Feedback], *, user: str) -> set[str]:
        """Store labels given by ``user``, replacing earlier ones of the same ids; return
        the ids that had one. ``rows`` must not repeat an id.
        """
        if not rows:
            return set()
        f = t.prediction_feedback.c
        values = [
            {
                "prediction_id": r.prediction_id,
                "deployment": r.deployment,
                "prediction_time": r.prediction_time,
                "label": r.label,
                "time": r.time,
                "user_name": user,
            }
            for r in rows
        ]

        def upsert() -> set[str]:
            existing: set[str] = set()
            with self._write() as conn:
                for chunk in _chunks([r.prediction_id for r in rows]):
                    found = conn.execute(select(f.prediction_id).where(f.prediction_id.in_(chunk)))
                    existing.update(found.scalars())
                for part in _chunks(values):
                    _dialect.upsert(conn, t.prediction_feedback, part, ("prediction_id",))
            return existing

        return _dialect.retry_locked(upsert)

    def list_feedback(
        self,
        deployment: str,
        *,
        since: int | None = None,
        until: int | None = None,
        recorded_after: int | None = None,
    ) -> list[Feedback]:
        """Labels of ``deployment``'s predictions with ``since <= prediction_time <= until``
        and, when given, recorded after ``recorded_after`` (all in ms)."""
        f = t.prediction_feedback.c
        stmt = select(t.prediction_feedback).where(f.deployment == deployment)
        if since is not None:
            stmt = stmt.where(f.prediction_time >= since)
        if until is not None:
            stmt = stmt.where(f.prediction_time <= until)
        if recorded_after is not None:
            stmt = stmt.where(f.time > recorded_after)
        with self._store.engine.connect() as conn:
            return [
                Feedback(
                    r.prediction_id, r.deployment, r.prediction_time, r.label, r.time, r.user_name
                )
                for r in conn.execute(stmt)
            ]


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _partition(row: Any) -> PredictionPartition:
    return PredictionPartition(
        digest=row.digest,
        deployment=row.deployment,
        rows=row.rows,
        min_time=row.min_time,
        max_time=row.max_time,
        min_id=bytes(row.min_id).decode(),
        max_id=bytes(row.max_id).decode(),
        creation_time=row.creation_time,
    )


def _row(p: PredictionPartition, now: int) -> dict[str, Any]:
    return {
        "digest": p.digest,
        "deployment": p.deployment,
        "rows": p.rows,
        "min_time": p.min_time,
        "max_time": p.max_time,
        "min_id": p.min_id.encode(),
        "max_id": p.max_id.encode(),
        "creation_time": p.creation_time or now,
    }
