"""``ferry import mlflow SOURCE``: bring an MLflow tracking store's history into ferryml."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.errors import ValidationFailed

imports = typer.Typer(help="Import another tool's records into ferryml.", no_args_is_help=True)


@imports.command("mlflow")
def import_mlflow(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="An MLflow store: an mlruns/ folder, a tracking database (sqlite:///mlflow.db, "
            "postgresql://...) or a running MLflow server (http://host:5000)."
        ),
    ],
    artifacts_root: Annotated[
        str | None,
        typer.Option(
            help="The folder an MLflow server keeps proxied artifacts in (its "
            "--artifacts-destination), for artifact URIs that start mlflow-artifacts:/."
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import experiments, runs (full metric histories, params, tags, artifacts, dataset
    inputs, nesting), logged models and the registry. Run it again after an interruption:
    only what is new is imported. Ends with counts and a check of both sides."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ferryml.imports import import_mlflow as run_import
    from ferryml.imports import open_source

    settings = settings_of(ctx)
    reader = open_source(source, artifacts_root=artifacts_root)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, console=render.console, transient=True, disable=json) as bar:
            tasks: dict[str, object] = {}

            def progress(kind: str, done: int, total: int) -> None:
                if kind not in tasks:
                    tasks[kind] = bar.add_task(f"importing {kind}", total=total)
                bar.update(tasks[kind], completed=done)  # type: ignore[arg-type]

            report = run_import(reader, settings, progress=progress)
    finally:
        reader.close()
    if json:
        render.print_json(
            {
                "counts": dict(report.counts),
                "problems": report.problems,
                "mismatches": report.mismatches,
                "checked_runs": report.checked_runs,
            }
        )
    else:
        render.table("imported", ["kind", "count"], sorted(report.counts.items()))
        for problem in report.problems:
            render.console.print(f"skipped: {problem}")
        verdict = "the same" if not report.mismatches else "DIFFERENT"
        render.console.print(
            f"check: {report.checked_runs} runs compared, params and latest metrics {verdict} "
            "on both sides"
        )
        for mismatch in report.mismatches:
            render.console.print(f"  {mismatch}")
    if report.mismatches:
        raise ValidationFailed(
            f"{len(report.mismatches)} imported runs differ from the source; run the import "
            "again, and report it if they still differ."
        )
