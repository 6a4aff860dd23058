"""Pipeline schedules: add, list and remove them, the cron expressions that say when they
run, and the scheduler loop that runs each due occurrence once, however many schedulers
run and however often they restart. The store keeps the schedules and the lock; the times
are computed here, so a team server's store works as the database's does."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

from ferryml._naming import check_name
from ferryml.config import Settings
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.store.base import ScheduleStore
from ferryml.store.entities import Schedule
from ferryml.store.factory import open_schedule_store

__all__ = [
    "CRON_EXAMPLE",
    "ScheduledRun",
    "add_schedule",
    "claim_due",
    "create_schedule",
    "list_schedules",
    "next_occurrence",
    "remove_schedule",
    "run_scheduler",
]

_log = logging.getLogger("ferryml.scheduler")
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_TARGET = re.compile(rf"{_DOTTED}:{_DOTTED}")
CRON_EXAMPLE = "'0 3 * * *' (03:00 UTC every day)"
_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")


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
    try:
        start = dt.datetime.fromtimestamp(after_ms / 1000, tz=dt.UTC)
        following = croniter(cron, start).get_next(dt.datetime)
    except CroniterBadDateError as e:
        raise InvalidArgument(_cron_message(cron, "it names no date that exists")) from e
    except CroniterError as e:
        raise InvalidArgument(_cron_message(cron, str(e).rstrip("."))) from e
    except (OverflowError, ValueError, OSError) as e:  # a time past the year 9999
        raise InvalidArgument(_cron_message(cron, "it names no date that exists")) from e
    return int(following.timestamp() * 1000)


def _cron_message(cron: str, reason: str) -> str:
    return (
        f"Cron expression {cron!r} is invalid: {reason}. Use five fields, "
        f"minute hour day-of-month month day-of-week, in UTC, e.g. {CRON_EXAMPLE}."
    )


def create_schedule(
    store: ScheduleStore,
    name: str,
    *,
    target: str,
    cron: str,
    params: Mapping[str, str] | None = None,
    now_ms: int | None = None,
) -> Schedule:
    """Record a schedule in ``store``, first due at the first occurrence after ``now_ms``.

    Raises:
        InvalidArgument: ``cron`` is not a valid expression.
        AlreadyExists: a schedule with this name exists.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return store.create_schedule(
        name,
        target=target,
        cron=cron,
        params=dict(params or {}),
        next_run_time=next_occurrence(cron, now),
        creation_time=now,
    )


def claim_due(store: ScheduleStore, now_ms: int) -> list[Schedule]:
    """Take every schedule due at ``now_ms`` and return them, marked RUNNING.

    A claimed schedule moves to its first occurrence after ``now_ms``, so a scheduler that
    was down across several occurrences runs the missed work once, not once per
    occurrence. Of schedulers racing for one occurrence, the store gives it to one.
    """
    claimed = []
    for due in store.list_due(now_ms):
        try:
            following = next_occurrence(due.cron, now_ms)
        except InvalidArgument as e:  # only a hand-edited row; the others still run
            _log.warning("Skipping schedule %r: %s", due.name, e)
            continue
        got = store.claim(due.name, due=due.next_run_time, next_run_time=following, now_ms=now_ms)
        if got is not None:
            claimed.append(got)
    return claimed


class ScheduledRun(NamedTuple):
    """One run the scheduler started: ``run_id`` is None when the run could not start."""

    schedule: str
    run_id: str | None
    status: str  # "FINISHED" | "FAILED"


@contextmanager
def _schedules(settings: Settings) -> Iterator[ScheduleStore]:
    store = open_schedule_store(settings)
    try:
        yield store
    finally:
        store.close()


def add_schedule(
    settings: Settings,
    name: str,
    cron: str,
    target: str,
    params: Mapping[str, str] | None = None,
) -> Schedule:
    """Run the pipeline ``target`` (``module:pipeline``) with ``params`` at every time
    ``cron`` names, in UTC, from the next one on.

    Raises:
        InvalidArgument: a malformed name, cron expression or target; a target that cannot
            be imported or is not a pipeline; params the pipeline does not take.
        NotFound: the target's module has no such name.
        AlreadyExists: a schedule with this name exists.

    Example:
        >>> add_schedule(settings, "nightly", "0 3 * * *", "train:training", {"lr": "0.1"})
    """
    check_name(name, "Schedule", "nightly-training")
    next_occurrence(cron, int(time.time() * 1000))  # a bad expression fails before any I/O
    if not _TARGET.fullmatch(target):
        raise InvalidArgument(
            f"Target {target!r} must look like module:pipeline, e.g. 'training.flows:train'."
        )
    params = dict(params or {})
    with _schedules(settings) as store:
        # Checked before importing the user's module, which may be slow or have effects;
        # the insert below still decides a race between two adds.
        try:
            store.get_schedule(name)
        except NotFound:
            pass
        else:
            raise AlreadyExists(
                f"Schedule {name!r} already exists. Pick another name, or remove it first "
                f"with `ferry schedule remove {name}`."
            )
        from ferryml.pipelines import load_target
        from ferryml.pipelines.engine import coerce_params

        pipeline = load_target(target)
        coerce_params(pipeline, pipeline.bind(params))  # a wrong type fails now, not at 3 am
        return create_schedule(store, name, target=target, cron=cron, params=params)


def list_schedules(settings: Settings) -> list[Schedule]:
    """Every schedule, by name."""
    with _schedules(settings) as store:
        return store.list_schedules()


def remove_schedule(settings: Settings, name: str) -> None:
    """Delete a schedule; a run it already started finishes.

    Raises:
        NotFound: no schedule has this name.
    """
    with _schedules(settings) as store:
        store.delete_schedule(name)


def run_scheduler(
    settings: Settings,
    *,
    once: bool = False,
    interval: float = 30.0,
    now: Callable[[], float] | None = None,
    stop: threading.Event | None = None,
    on_run: Callable[[ScheduledRun], None] | None = None,
) -> list[ScheduledRun]:
    """Run due pipelines until ``stop`` is set, checking every ``interval`` seconds.

    Each due occurrence is claimed in the store before it runs, so any number of
    schedulers can share a store and each occurrence still runs once; one that was down
    across several occurrences runs the missed work once. A pipeline that fails (or
    cannot even start) is recorded FAILED and the scheduler carries on.

    Args:
        once: make one pass and return, instead of looping.
        now: the clock, in seconds since the epoch (default ``time.time``).
        stop: set it, from a signal handler or another thread, to end the loop.
        on_run: called with each finished run, e.g. to print it.

    Returns:
        The runs of the last pass.

    Raises:
        InvalidArgument: ``interval`` is not positive.
    """
    if not interval > 0:
        raise InvalidArgument(f"Interval {interval} must be a positive number of seconds.")
    clock = now or time.time
    stop = stop or threading.Event()
    with _schedules(settings) as store:
        while True:
            ran = [
                _run(store, schedule, settings, on_run)
                for schedule in claim_due(store, int(clock() * 1000))
            ]
            if once or stop.wait(interval):
                return ran


def _run(
    store: ScheduleStore,
    schedule: Schedule,
    settings: Settings,
    on_run: Callable[[ScheduledRun], None] | None,
) -> ScheduledRun:
    from ferryml.pipelines import run_target

    _log.info("Running schedule %r: %s", schedule.name, schedule.target)
    try:
        result = run_target(schedule.target, dict(schedule.params), settings=settings)
        run = ScheduledRun(schedule.name, result.run_id, str(result.status))
    except Exception as e:  # noqa: BLE001 - one broken pipeline must not stop the others
        _log.error("Schedule %r could not run %s: %s", schedule.name, schedule.target, e)
        run = ScheduledRun(schedule.name, None, "FAILED")
    try:
        store.record_result(run.schedule, run.run_id, run.status, run_time=schedule.last_run_time)
    except NotFound:
        _log.warning("Schedule %r was removed while it ran; result not recorded", run.schedule)
    if on_run is not None:
        on_run(run)
    return run
