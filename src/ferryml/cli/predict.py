"""``ferry predict``: batch inference over a Parquet or CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of


def predict(
    ctx: typer.Context,
    model_uri: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/N, runs:/…")],
    input: Annotated[
        str,
        typer.Argument(
            help="Rows to predict: a .parquet or .csv file, or a Parquet dataset (a folder or "
            "an s3:// prefix, hive-partitioned or not)."
        ),
    ],
    output: Annotated[
        Path,
        typer.Argument(
            help="Where to write them with a prediction column: a .parquet or .csv file, or "
            "for a dataset a new folder."
        ),
    ],
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk.", min=1)] = 50_000,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: one per CPU).", min=1)
    ] = None,
    column: Annotated[str, typer.Option(help="The column predictions go to.")] = "prediction",
    executor: Annotated[
        str | None,
        typer.Option(help="local or dask (default: dask: in ferry.yaml, else local)."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Dask scheduler, tcp://host:8786 (default: a LocalCluster)."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Predict every row of INPUT with a model into OUTPUT; an interrupted job resumes."""
    from ferryml.serving.batch import kept_parts, run_batch

    settings = settings_of(ctx)
    columns = (TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    quiet = json or not render.console.is_terminal
    try:
        with Progress(*columns, console=render.console, transient=True, disable=quiet) as bar:
            task = bar.add_task("rows", total=None)
            result = run_batch(
                model_uri,
                input,
                output,
                chunk_rows=chunk_rows,
                workers=workers,
                settings=settings,
                executor=executor,
                address=address,
                column=column,
                on_progress=lambda done, total: bar.update(
                    task, completed=done, total=total or None
                ),
            )
    except BaseException:
        parts, kept = kept_parts(output)
        if kept:
            typer.echo(
                f"note: {kept} predicted chunk{'' if kept == 1 else 's'} kept in {parts}; the "
                "same command resumes from them (delete the folder to start over).",
                err=True,
            )
        raise
    if json:
        render.print_json({**render.to_jsonable(result), "output": str(result.output)})
        return
    resumed = f", {result.resumed_chunks} resumed" if result.resumed_chunks else ""
    render.console.print(
        f"{result.rows:,} rows -> {result.output} in {result.seconds:.1f}s "
        f"({result.chunks} chunks{resumed}); run {result.run_id}"
    )
