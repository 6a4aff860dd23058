"""Pipeline schedules in the same SQL database as the tracking store, and the lock that
runs each occurrence once however many schedulers are running."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import Schedule
from ferryml.store.sql import StorePart

__all__ = ["CRON_EXAMPLE", "SqlScheduleStore", "next_occurrence"]

CRON_EXAMPLE = "'0 3 * * *' (03:00 UTC every day)"
RUNNING = "RUNNING"
_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
_log = logging.getLogger(__name__)


def next_occurrence(cron: str, after_ms: int) -> int:
    """The first time strictly after ``after_ms`` that ``cron`` names, in ms, read in UTC.

    Only classic five-field expressions (``minute hour day month weekday``) and the
    ``@hourly``-style aliases are accepted: croniter reads a sixth field as seconds at the
    end, so a Quartz-style ``0 0 3 * * *`` would silently mean something else.

    Raises:
        InvalidArgument: the expression is malformed or names no date that exists.
    """
    from croniter import CroniterBadDateError, CroniterError, croniter  # only for schedules

    fields = cron.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        if fields[0].lower() not in _ALIASES:
            reason = f"{fields[0]!r} is not one of {', '.join(_ALIASES)}"
            raise InvalidArgument(_cron_message(cron, reason))
    elif len(fields) != 5:
        raise InvalidArgument(_cron_message(cron, f"it has {len(fields)} field(s), not 5"))
    start = dt.datetime.fromtimestamp(after_ms / 1000, tz=dt.UTC)
    try:
        following = croniter(cron, start).get_next(dt.datetime)
    except CroniterBadDateError as e:
        raise InvalidArgument(_cron_message(cron, "it names no date that exists")) from e
    except CroniterError as e:
        raise InvalidArgument(_cron_message(cron, str(e).rstrip("."))) from e
    return int(following.timestamp() * 1000)


def _cron_message(cron: str, reason: str) -> str:
    return (
        f"Cron expression {cron!r} is invalid: {reason}. Use five fields, "
        f"minute hour day-of-month month day-of-week, in UTC, e.g. {CRON_EXAMPLE}."
    )


class SqlScheduleStore(StorePart):
    """Schedules in an opened ``SqlStore``'s database.

    ``claim_due`` is the lock: a compare-and-set on ``next_run_time`` hands each
    occurrence to exactly one caller, across threads, processes and restarts.

    Example:
        >>> schedules = SqlScheduleStore(SqlStore("sqlite:///.ferry/ferry.db").open())
        >>> for schedule in schedules.claim_due(now_ms):
        ...     schedules.record_result(schedule.name, run_id, "FINISHED")
    """

    def create_schedule(
        self,
        name: str,
        *,
        target: str,
        cron: str,
        params: Mapping[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Schedule:
        """Record a schedule; its first run is the first occurrence after ``now_ms``.

        Raises:
            InvalidArgument: ``cron`` is not a valid expression.
            AlreadyExists: a schedule with this name exists.
        """
        now = _now_ms() if now_ms is None else now_ms
        schedule = Schedule(
            name=name,
            target=target,
            cron=cron,
            params=dict(params or {}),
            next_run_time=next_occurrence(cron, now),
            last_run_time=None,
            last_run_id=None,
            last_status=None,
            creation_time=now,
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

    def claim_due(self, now_ms: int) -> list[Schedule]:
        """Take ownership of every schedule due at ``now_ms`` and return them, marked RUNNING.

        A claimed schedule's ``next_run_time`` moves to its first occurrence after
        ``now_ms``, so a scheduler that was down across several occurrences runs the
        missed work once, not once per occurrence. Each claim is an UPDATE conditioned on
        the ``next_run_time`` that was read: of callers racing for one occurrence, only the
        one whose UPDATE changed the row gets it (SQLite serializes the writers; PostgreSQL
        re-checks the condition once the first writer commits).
        """
        c = t.schedules.c
        with self._store.engine.connect() as conn:
            due = conn.execute(
                select(t.schedules)
                .where(c.next_run_time <= now_ms)
                .order_by(c.next_run_time, c.name)
            ).all()
        claimed = []
        for row in due:
            try:
                following = next_occurrence(row.cron, now_ms)
            except InvalidArgument as e:  # only a hand-edited row; the others still run
                _log.warning("Skipping schedule %r: %s", row.name, e)
                continue
            changes: dict[str, Any] = {
                "next_run_time": following,
                "last_run_time": now_ms,
                "last_run_id": None,
                "last_status": RUNNING,
            }
            stmt = (
                update(t.schedules)
                .where(c.name == row.name, c.next_run_time == row.next_run_time)
                .values(**changes)
            )

            def claim(stmt: Any = stmt) -> int:
                with self._write() as conn:
                    return int(conn.execute(stmt).rowcount)

            if _dialect.retry_locked(claim) == 1:
                claimed.append(dataclasses.replace(_schedule(row), **changes))
        return claimed

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


def _now_ms() -> int:
    return int(time.time() * 1000)


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
