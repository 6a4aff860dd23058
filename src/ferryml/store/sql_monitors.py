"""Monitors over the same SQL database: a spec per name, and one result per window checked."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, select

from ferryml.errors import AlreadyExists, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.loop import MonitorResult
from ferryml.store.sql import StorePart

__all__ = ["MonitorResult", "SqlMonitorStore"]


class SqlMonitorStore(StorePart):
    """``MonitorStore`` in an opened ``SqlStore``'s database."""

    def create(self, name: str, spec: dict[str, Any]) -> None:
        def write() -> None:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                found = conn.execute(
                    select(t.monitors.c.name).where(t.monitors.c.name == name)
                ).first()
                if found is not None:
                    raise AlreadyExists(
                        f"Monitor {name!r} exists already; pick another name. "
                        "See `ferry monitor list`."
                    )
                conn.execute(
                    t.monitors.insert().values(name=name, spec=json.dumps(spec), created=_now())
                )

        _dialect.retry_locked(write)

    def remove(self, name: str) -> int:
        """Delete the monitor and its stored windows (its alerts stay in their history);
        the number of windows deleted. Raises NotFound."""

        def write() -> int:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                gone = conn.execute(delete(t.monitors).where(t.monitors.c.name == name)).rowcount
                if gone != 1:
                    raise NotFound(f"Monitor {name!r} not found. See `ferry monitor list`.")
                r = t.monitor_results.c
                return int(
                    conn.execute(delete(t.monitor_results).where(r.monitor == name)).rowcount
                )

        return _dialect.retry_locked(write)

    def remove_results(self, name: str, *, ended_after: int) -> int:
        self.get(name)  # NotFound for a monitor that does not exist

        def write() -> int:
            r = t.monitor_results.c
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                gone = delete(t.monitor_results).where(
                    r.monitor == name, r.window_end > ended_after
                )
                return int(conn.execute(gone).rowcount)

        return _dialect.retry_locked(write)

    def get(self, name: str) -> dict[str, Any]:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.monitors.c.spec).where(t.monitors.c.name == name)).first()
        if row is None:
            raise NotFound(f"Monitor {name!r} not found. See `ferry monitor list`.")
        spec: dict[str, Any] = json.loads(row.spec)
        return spec

    def list_monitors(self) -> list[tuple[str, dict[str, Any]]]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.monitors.c.name, t.monitors.c.spec).order_by(t.monitors.c.name)
            ).all()
        return [(r.name, json.loads(r.spec)) for r in rows]

    def last_window(self, name: str) -> tuple[int, int] | None:
        """The start and end of the latest window stored for ``name``; None before the
        first."""
        r = t.monitor_results.c
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(r.window_start, r.window_end)
                .where(r.monitor == name)
                .order_by(r.window_end.desc(), r.window_start.desc())
                .limit(1)
            ).first()
        return None if row is None else (int(row.window_start), int(row.window_end))

    def add_result(
        self,
        name: str,
        window_start: int,
        window_end: int,
        metrics: dict[str, float],
        drift: dict[str, Any],
    ) -> bool:
        """Store a window's result; False (and nothing written) when it is stored already."""
        r = t.monitor_results.c

        def write() -> bool:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                found = conn.execute(
                    select(r.monitor).where(
                        r.monitor == name,
                        r.window_start == window_start,
                        r.window_end == window_end,
                    )
                ).first()
                if found is not None:
                    return False
                conn.execute(
                    t.monitor_results.insert().values(
                        monitor=name,
                        window_start=window_start,
                        window_end=window_end,
                        metrics=json.dumps(metrics),
                        drift=json.dumps(drift),
                        created=_now(),
                    )
                )
                return True

        return _dialect.retry_locked(write)

    def list_results(self, name: str, *, ended_after: int | None = None) -> list[MonitorResult]:
        """The stored windows of ``name`` (those ending after ``ended_after`` ms, when
        given), oldest first."""
        r = t.monitor_results.c
        condition = r.monitor == name
        if ended_after is not None:
            condition &= r.window_end > ended_after
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.monitor_results).where(condition).order_by(r.window_start, r.window_end)
            ).all()
        return [
            MonitorResult(
                row.monitor,
                row.window_start,
                row.window_end,
                json.loads(row.metrics),
                json.loads(row.drift),
                row.created,
            )
            for row in rows
        ]


def _now() -> int:
    return int(time.time() * 1000)
