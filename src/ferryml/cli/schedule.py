"""``ferry schedule …`` and ``ferry scheduler``: run pipelines on a cron schedule."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.pipelines import schedule as core

schedules = typer.Typer(
    help="Run pipelines on a cron schedule (UTC): add, list, remove. `ferry scheduler` runs them.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _utc(ms: int | None) -> str:
    # Cron expressions are read in UTC, so their times are shown in UTC too.
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _params(values: list[str] | None) -> dict[str, str]:
    params = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(
                f"{value!r} is not KEY=VALUE, e.g. --param lr=0.1", param_hint="'--param'"
            )
        params[key] = text
    return params


@schedules.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the schedule, e.g. nightly.")],
    target: Annotated[str, typer.Argument(help="The pipeline, as module:pipeline.")],
    cron: Annotated[
        str, typer.Option("--cron", help="When to run, in UTC, e.g. '0 3 * * *' (03:00 daily).")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE; repeat for more.")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Run a pipeline at the times a cron expression names."""
    found = core.add_schedule(settings_of(ctx), name, cron, target, _params(param))
    if json:
        render.print_json(found)
        return
    render.console.print(
        f"Scheduled {found.name!r}: {found.target} at {found.cron!r} (UTC); "
        f"next run {_utc(found.next_run_time)}. Start `ferry scheduler` to run it."
    )


@schedules.command("list")
def list_(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List schedules with their next and last runs."""
    found = core.list_schedules(settings_of(ctx))
    if json:
        render.print_json(found)
        return
    if not found:
        render.console.print(
            "No schedules. Add one with "
            "`ferry schedule add NAME --cron '0 3 * * *' module:pipeline`."
        )
        return
    render.table(
        None,
        ["name", "cron", "target", "params", "next run", "last run", "status", "run"],
        [
            (
                s.name,
                s.cron,
                s.target,
                " ".join(f"{k}={v}" for k, v in s.params.items()),
                _utc(s.next_run_time),
                _utc(s.last_run_time),
                s.last_status or "",
                s.last_run_id or "",
            )
            for s in found
        ],
    )


@schedules.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Delete a schedule; a run it already started finishes."""
    core.remove_schedule(settings_of(ctx), name)
    render.console.print(f"Removed schedule {name!r}.")


def scheduler(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, then exit.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between checks for due schedules.", min=0.1)
    ] = 30.0,
) -> None:
    """Run scheduled pipelines when they are due; any number may share a store."""

    def show(run: core.ScheduledRun) -> None:
        render.console.print(f"{run.schedule}: run {run.run_id or '(none)'} {run.status}")

    with _stop_on_signals() as stop:
        if not once:
            render.console.print(f"Scheduler started; checking every {interval:g}s. Ctrl-C stops.")
        ran = core.run_scheduler(
            settings_of(ctx), once=once, interval=interval, stop=stop, on_run=show
        )
    if once and not ran:
        render.console.print("No schedule was due.")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or Ctrl-C, so that a running pipeline finishes and is
    recorded before the scheduler exits; a second Ctrl-C aborts at once."""
    stop = threading.Event()

    def handle(_signum: int, _frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    if threading.current_thread() is not threading.main_thread():  # signals need main
        yield stop
        return
    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
