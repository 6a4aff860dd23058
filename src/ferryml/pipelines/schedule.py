"""Pipeline schedules: add, list and remove them, and the scheduler loop that runs each
due occurrence once, however many schedulers run and however often they restart."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from ferryml._naming import check_name
from ferryml.config import Settings
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.store.entities import Schedule
from ferryml.store.factory import open_sql_part

if TYPE_CHECKING:
    from ferryml.store.sql_schedules import SqlScheduleStore

__all__ = ["ScheduledRun", "add_schedule", "list_schedules", "remove_schedule", "run_scheduler"]

_log = logging.getLogger("ferryml.scheduler")
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_TARGET = re.compile(rf"{_DOTTED}:{_DOTTED}")


class ScheduledRun(NamedTuple):
    """One run the scheduler started: ``run_id`` is None when the run could not start."""

    schedule: str
    run_id: str | None
    status: str  # "FINISHED" | "FAILED"


@contextmanager
def _schedules(settings: Settings) -> Iterator[SqlScheduleStore]:
    # Imported here so that `ferry --help` does not pay for SQLAlchemy.
    from ferryml.store.sql_schedules import SqlScheduleStore

    store = open_sql_part(settings, SqlScheduleStore)
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
    from ferryml.store.sql_schedules import next_occurrence

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
        return store.create_schedule(name, target=target, cron=cron, params=params)


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
                for schedule in store.claim_due(int(clock() * 1000))
            ]
            if once or stop.wait(interval):
                return ran


def _run(
    store: SqlScheduleStore,
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
