"""``ferry gc``: remove deleted runs for good and reclaim unreferenced artifact blobs."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of


def gc(
    ctx: typer.Context,
    grace: Annotated[
        str,
        typer.Option(
            help="Keep blobs written or reused more recently than this (e.g. 30m, 6h, 1d), "
            "so writers still recording them are safe."
        ),
    ] = "1d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; change nothing.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Remove deleted runs and experiments for good, and delete the artifact blobs nothing
    refers to any more. Safe while other processes write."""
    from ferryml.gc import collect_garbage, parse_grace

    report = collect_garbage(settings_of(ctx), grace=parse_grace(grace), dry_run=dry_run)
    if json:
        render.print_json(report)
        return
    removed = _count(report.runs, "deleted run")
    if report.experiments:
        removed = (
            f"{_count(report.experiments, 'deleted experiment')} with "
            f"{'its' if report.experiments == 1 else 'their'} runs and "
            f"{_count(report.runs, 'other deleted run')}"
        )
    young = f" and every blob newer than {grace}" if report.grace else ""
    render.console.print(
        f"{'Would remove' if dry_run else 'Removed'} {removed} for good; "
        f"{'would delete' if dry_run else 'deleted'} {_count(report.blobs, 'unreferenced blob')} "
        f"({render.size(report.bytes)}); kept {_count(report.kept, 'referenced blob')}{young}."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
