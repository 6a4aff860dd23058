"""``ferry predictions …``: the prediction log."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

predictions = typer.Typer(help="The prediction log: compact.", no_args_is_help=True)


@predictions.command("compact")
def compact(
    ctx: typer.Context,
    deployment: Annotated[
        str | None, typer.Argument(help="The deployment whose log to compact (default: all).")
    ] = None,
    target_rows: Annotated[
        int, typer.Option(help="Rows a compacted partition holds at most.", min=2)
    ] = 500_000,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Merge the log's small per-flush partitions, day by day, into larger ones, so reading
    a day stays fast. Safe while servers write and others read."""
    from ferryml.serving.compaction import compact as run

    report = run(settings_of(ctx), deployment, target_rows=target_rows)
    if json:
        render.print_json(report)
        return
    render.console.print(
        f"Merged {report.merged:,} partitions into {report.written:,} ({report.rows:,} rows) "
        f"in {report.seconds:.1f}s"
        + (f"; {report.lost_races} left to another compaction" if report.lost_races else "")
        + "."
    )
