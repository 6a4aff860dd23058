"""``ferry monitor …``: monitors that check a deployment's predictions window by window
for drift and performance, and alert on rules."""

from __future__ import annotations

import json as jsonlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferryml._duration import parse_duration
from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.errors import InvalidArgument

if TYPE_CHECKING:
    from ferryml.monitoring.monitors import WindowResult

monitor = typer.Typer(
    help="Monitors: drift and performance of a deployment's predictions, window by window.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_LONGEST_SLEEP = 24 * 3600


def _channel(text: str) -> Any:
    """``log``, or a channel's mapping as JSON: '{"slack": "https://..."}'."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        return jsonlib.loads(text)
    except ValueError as e:
        raise InvalidArgument(
            f"Channel {text!r} is not valid JSON; write log or e.g. "
            '\'{"slack": "https://hooks.slack.com/services/..."}\'.'
        ) from e


def _every(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except InvalidArgument:
        seconds = 0
    if not 1 <= seconds <= _LONGEST_SLEEP:
        raise InvalidArgument(
            f"--every {text!r} is not a duration between 1s and 24h; write e.g. 30s, 5min or 1h."
        )
    return int(seconds)


def _time(text: str) -> Any:
    import pandas as pd

    try:
        return pd.Timestamp(text)
    except ValueError:
        raise InvalidArgument(
            f"--recheck {text!r} is not a time; write e.g. 2024-06-01T00:00 (UTC unless it "
            "names its offset)."
        ) from None


@monitor.command("add")
def add(
    ctx: typer.Context,
    name: str,
    deployment: Annotated[str, typer.Option(help="The deployment to watch.")],
    reference: Annotated[
        str, typer.Option(help="model:NAME@ALIAS, data:NAME@VERSION or window:START/END.")
    ],
    window: Annotated[
        str, typer.Option(help="A duration (15m, 1h, 1d) or a count of rows.")
    ] = "1h",
    task: Annotated[
        str | None, typer.Option(help="classification or regression, for performance.")
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(help="An alert rule, e.g. 'drift_share > 0.3 for 2 windows'."),
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="Where alerts go: log, or a channel as JSON.")
    ] = None,
    checks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated checks: drift, performance, concept, estimated, importance "
            "(default drift,performance)."
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Add a monitor; run it with `ferry monitor run NAME`."""
    from ferryml.monitoring.monitors import MonitorSpec, add_monitor

    spec = MonitorSpec(
        name,
        deployment,
        reference,
        window=int(window) if window.strip().isdigit() else window,
        task=task,
        rules=rule or [],
        channels=[_channel(c) for c in channel or []],
        **({} if checks is None else {"checks": checks}),
    )
    add_monitor(settings_of(ctx), spec)
    if json:
        render.print_json(spec.to_dict())
    else:
        typer.echo(f"Monitor {name!r} added; run it with `ferry monitor run {name}`.")


@monitor.command("run")
def run(
    ctx: typer.Context,
    name: str,
    every: Annotated[
        str | None, typer.Option(help="Run again after this long (30s, 5m, 1h) until stopped.")
    ] = None,
    recheck: Annotated[
        str | None,
        typer.Option(
            help="Check the windows ending after this time (2024-06-01T00:00) again, with the "
            "rows logged in them since (after the clock stepped back)."
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Check the windows logged since the monitor's last run."""
    from ferryml.monitoring.monitors import run_monitor

    pause = _every(every) if every is not None else None
    since = _time(recheck) if recheck is not None else None
    while True:
        _print_results(name, run_monitor(settings_of(ctx), name, recheck=since), json)
        since = None  # once
        if pause is None:
            return
        time.sleep(pause)


def _print_results(name: str, results: list[WindowResult], json: bool) -> None:
    if json:
        render.print_json(
            [
                {
                    "start": r.start.isoformat(),
                    "end": r.end.isoformat(),
                    "metrics": r.metrics,
                    "alerts": [a.message for a in r.alerts],
                    **r.details,
                }
                for r in results
            ]
        )
    elif not results:
        typer.echo(f"Monitor {name!r}: no new complete window.")
    else:
        render.table(
            f"Monitor {name}",
            ["start", "end", "rows", "drift_share", "drifted", "alerts"],
            [
                (
                    r.start.isoformat(),
                    r.end.isoformat(),
                    int(r.metrics["rows"]),
                    _cell(r.metrics.get("drift_share")),
                    ", ".join(r.drift.drifted_columns),
                    len(r.alerts),
                )
                for r in results
            ],
        )
        for r in results:
            for check, detail in r.details.items():
                if "error" in detail:
                    typer.echo(f"Check {check} failed on {r.start.isoformat()}: {detail['error']}")


@monitor.command("report")
def report(
    ctx: typer.Context,
    name: str,
    html: Annotated[Path | None, typer.Option(help="Write the HTML report to this file.")] = None,
    json: JsonFlag = False,
) -> None:
    """Show a monitor's windows over time; --html writes a page with the latest drift."""
    from ferryml.monitoring import monitors

    if html is not None:
        html.write_text(monitors.report_html(settings_of(ctx), name), encoding="utf-8")
        typer.echo(f"Wrote {html}.")
        return
    data = monitors.report(settings_of(ctx), name)
    if json:
        render.print_json(data)
        return
    names = sorted({m for w in data["windows"] for m in w["metrics"]})
    render.table(
        f"Monitor {name}",
        ["#", "start", *names],
        [
            (i, w["start"], *(_cell(w["metrics"].get(m)) for m in names))
            for i, w in enumerate(data["windows"], 1)
        ],
    )


def _cell(value: float | None) -> str:
    return "" if value is None else render.number(value)


@monitor.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Delete a monitor and its stored windows; its alerts stay in their history."""
    from ferryml.monitoring.monitors import remove_monitor

    windows = remove_monitor(settings_of(ctx), name)
    typer.echo(f"Monitor {name!r} removed with its {windows} window(s).")


@monitor.command("list")
def list_(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List monitors."""
    from ferryml.monitoring.monitors import list_monitors

    found = list_monitors(settings_of(ctx))
    if json:
        render.print_json([m.to_dict() for m in found])
    elif not found:
        typer.echo("No monitors; add one with `ferry monitor add`.")
    else:
        render.table(
            None,
            ["name", "deployment", "reference", "window", "checks", "rules"],
            [
                (m.name, m.deployment, m.reference, m.window, ",".join(m.checks), len(m.rules))
                for m in found
            ],
        )
