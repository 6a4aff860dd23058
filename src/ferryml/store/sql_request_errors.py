"""``RequestErrorStore`` in the same SQL database as the other stores: failed prediction
requests counted per second, summed per slot where the deployment page asks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import func, select

from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.request_errors import RequestErrorCount, RequestErrors
from ferryml.store.sql import StorePart

__all__ = ["SqlRequestErrorStore"]

_CHUNK = 1000  # rows a statement


class SqlRequestErrorStore(StorePart):
    """Failed requests' counts in an opened ``SqlStore``'s database.

    Example:
        >>> errors = SqlRequestErrorStore(SqlStore("sqlite:///.ferry/ferry.db").open())
    """

    def create_request_errors(self, rows: Sequence[RequestErrors]) -> None:
        values = [dataclasses.asdict(r) for r in rows]
        if not values:
            return

        def create() -> None:
            with self._write() as conn:
                for start in range(0, len(values), _CHUNK):
                    _dialect.insert_ignore(conn, t.request_errors, values[start : start + _CHUNK])

        _dialect.retry_locked(create)

    def count_request_errors(
        self, deployment: str, *, since: int, until: int, width_ms: int
    ) -> list[RequestErrorCount]:
        e = t.request_errors.c
        slot = (e.time - since) // max(1, int(width_ms))  # integer division on both dialects
        stmt = (
            select(e.route, func.max(e.version), e.status, slot, func.sum(e.count))
            .where(e.deployment == deployment, e.time >= since, e.time < until)
            .group_by(e.route, e.status, slot)
            .order_by(e.route, e.status, slot)
        )
        with self._store.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [RequestErrorCount(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def latest_request_errors(
        self, deployment: str, *, since: int, limit: int = 100, route: str | None = None
    ) -> list[RequestErrors]:
        e = t.request_errors.c
        chosen = [e.deployment == deployment, e.time >= since]
        if route is not None:
            chosen.append(e.route == route)
        stmt = (
            select(t.request_errors)
            .where(*chosen)
            .order_by(e.time.desc(), e.batch.desc())
            .limit(max(0, limit))
        )
        with self._store.engine.connect() as conn:
            return [RequestErrors(**row._mapping) for row in conn.execute(stmt)]
