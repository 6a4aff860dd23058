"""Pipeline schedules in the same SQL database as the tracking store. The store knows no
cron (``ferryml.pipelines.schedule`` computes the times): ``claim`` is the compare-and-set
that runs each occurrence once however many schedulers are running."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml._naming import check_name
from ferryml.errors import AlreadyExists, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import Schedule
from ferryml.store.sql import StorePart

__all__ = ["RUNNING", "SqlScheduleStore"]

RUNNING = "RUNNING"


class SqlScheduleStore(StorePart):
    """Schedules in an opened ``SqlStore``'s database.

    ``claim`` is the lock: a compare-and-set on ``next_run_time`` hands each occurrence
    to exactly one caller, across threads, processes and restarts.

    Example:
        >>> schedules = SqlScheduleStore(SqlStore("sqlite:///.ferry/ferry.db").open())
        >>> for due in schedules.list_due(now_ms):
        ...     schedules.claim(due.name, due=due.next_run_time, next_run_time=n, now_ms=now_ms)
    """

    def create_schedule(
        self,
        name: str,
        *,
        target: str,
        cron: str,
        params: Mapping[str, str],
        next_run_time: int,
        creation_time: int,
    ) -> Schedule:
        """Record a schedule, first due at ``next_run_time``.

        Raises:
            InvalidArgument: ``name`` breaks the naming rule.
            AlreadyExists: a schedule with this name exists.
        """
        check_name(name, "Schedule", "nightly-training")
        schedule = Schedule(
            name=name,
            target=target,
            cron=cron,
            params=dict(params),
            next_run_time=next_run_time,
            last_run_time=None,
            last_run_id=None,
            last_status=None,
            creation_time=creation_time,
        )
        row = {
            **dataclasses.asdict(schedule),
            "params": json.dumps(schedule.params, sort_keys=True),
        }

        def create() -> None:
            with self._write() as conn:
                conn.execute(t.schedules.insert().values(**row))

        try:
            _dialect.retry_locked(create)
        except SAIntegrityError as e:
            raise AlreadyExists(
                f"Schedule {name!r} already exists. Pick another name, or remove it first "
                f"with `ferry schedule remove {name}`."
            ) from e
        return schedule

    def get_schedule(self, name: str) -> Schedule:
        """The schedule named ``name``. Raises NotFound for an unknown name."""
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.schedules).where(t.schedules.c.name == name)).first()
        if row is None:
            raise _not_found(name)
        return _schedule(row)

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(t.schedules).order_by(t.schedules.c.name)).all()
        return [_schedule(r) for r in rows]

    def delete_schedule(self, name: str) -> None:
        """Remove a schedule; a run already started finishes. Raises NotFound if unknown."""

        def delete() -> int:
            with self._write() as conn:
                return int(
                    conn.execute(t.schedules.delete().where(t.schedules.c.name == name)).rowcount
                )

        if _dialect.retry_locked(delete) == 0:
            raise _not_found(name)

    def list_due(self, now_ms: int) -> list[Schedule]:
        """Schedules due at ``now_ms`` (``next_run_time`` at or before it), earliest first."""
        c = t.schedules.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.schedules)
                .where(c.next_run_time <= now_ms)
                .order_by(c.next_run_time, c.name)
            ).all()
        return [_schedule(r) for r in rows]

    def claim(self, name: str, *, due: int, next_run_time: int, now_ms: int) -> Schedule | None:
        """Take the occurrence ``due`` of ``name``: move the schedule to ``next_run_time``,
        marked RUNNING since ``now_ms``. An UPDATE conditioned on ``next_run_time == due``:
        of callers racing for one occurrence only the one whose UPDATE changed the row gets
        it (SQLite serializes the writers; PostgreSQL re-checks the condition once the first
        writer commits); the others get None."""
        c = t.schedules.c
        stmt = (
            update(t.schedules)
            .where(c.name == name, c.next_run_time == due)
            .values(
                next_run_time=next_run_time,
                last_run_time=now_ms,
                last_run_id=None,
                last_status=RUNNING,
            )
        )

        def claim() -> Schedule | None:
            with self._write() as conn:
                if conn.execute(stmt).rowcount != 1:
                    return None
                row = conn.execute(select(t.schedules).where(c.name == name)).one()
            return _schedule(row)

        return _dialect.retry_locked(claim)

    def record_result(
        self, name: str, run_id: str | None, status: str, *, run_time: int | None = None
    ) -> bool:
        """Record how a claimed run ended (``run_id`` is None if it never started).

        With ``run_time`` (the claimed schedule's ``last_run_time``), a result is dropped
        when a later occurrence has been claimed since, so a slow run cannot overwrite the
        status of a newer one. Returns whether the result was recorded.

        Raises:
            NotFound: no schedule is named ``name`` (it was removed while running).
        """
        c = t.schedules.c
        stmt = update(t.schedules).where(c.name == name)
        if run_time is not None:
            stmt = stmt.where(c.last_run_time == run_time)
        stmt = stmt.values(last_run_id=run_id, last_status=status)

        def record() -> int:
            with self._write() as conn:
                return int(conn.execute(stmt).rowcount)

        if _dialect.retry_locked(record) == 1:
            return True
        self.get_schedule(name)  # raises NotFound if it is gone
        return False


def _not_found(name: str) -> NotFound:
    return NotFound(f"Schedule {name!r} not found. See `ferry schedule list`.")


def _schedule(row: Any) -> Schedule:
    return Schedule(
        name=row.name,
        target=row.target,
        cron=row.cron,
        params=json.loads(row.params),
        next_run_time=row.next_run_time,
        last_run_time=row.last_run_time,
        last_run_id=row.last_run_id,
        last_status=row.last_status,
        creation_time=row.creation_time,
    )
