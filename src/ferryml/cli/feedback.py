"""``ferry feedback …``: join ground-truth labels to logged predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

feedback = typer.Typer(
    help="Join true labels to logged predictions by prediction id.", no_args_is_help=True
)
_SHOWN = 10  # unknown ids listed before "and N more"


@feedback.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="A .csv or .parquet file of labels.")
    ],
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column",
            help="Column holding the prediction ids (default: prediction_id, or id in a "
            "file without one).",
        ),
    ] = None,
    label_column: Annotated[
        str, typer.Option("--label-column", help="Column holding the true labels.")
    ] = "label",
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Store the labels in FILE, joined to predictions by id; ids no logged prediction has
    are listed, not stored. Exits 1 when the file has labels but none matched a prediction."""
    from ferryml.serving.predictions import import_feedback

    settings = settings_of(ctx)
    report = import_feedback(
        path, id_column=id_column, label_column=label_column, settings=settings
    )
    nothing_matched = report.accepted == 0 and bool(report.unknown_ids)
    if json:
        render.print_json(report)
    else:
        # Plain echo: ids may hold rich markup and long lists must not be folded.
        typer.echo(
            f"{report.accepted} labels imported ({report.updated} replaced an earlier label), "
            f"{len(report.unknown_ids)} unknown prediction ids."
        )
        if report.unknown_ids and not nothing_matched:
            shown = ", ".join(report.unknown_ids[:_SHOWN])
            more = len(report.unknown_ids) - _SHOWN
            typer.echo(f"Unknown: {shown}" + (f" and {more} more" if more > 0 else ""))
    if nothing_matched:
        typer.echo(
            f"error: none of the {len(report.unknown_ids)} prediction ids in {path} matches a "
            f"logged prediction (first: {report.unknown_ids[0]}). Check --id-column, the "
            "store (--store), or wait for the servers to flush their logs.",
            err=True,
        )
        raise typer.Exit(1)
