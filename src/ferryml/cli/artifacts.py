"""``ferry artifacts …``: list a run's artifacts and copy them out of the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.tracking.client import FerryClient

artifacts = typer.Typer(help="List and download the artifacts of runs.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PathArgument = Annotated[
    str, typer.Argument(help="An artifact, or a folder of them (default: everything).")
]


@artifacts.command("list")
def list_artifacts(
    ctx: typer.Context, run_id: str, path: PathArgument = "", json: JsonFlag = False
) -> None:
    """List a run's artifacts (under PATH): path, size and digest."""
    found = FerryClient(settings_of(ctx)).list_artifacts(run_id, path)
    if json:
        render.print_json(found)
        return
    render.table(
        None,
        ["path", "size", "digest"],
        [(a.path, render.size(a.size), a.digest[:12]) for a in found],
    )


@artifacts.command("download")
def download(
    ctx: typer.Context,
    run_id: str,
    path: PathArgument = "",
    dst: Annotated[
        Path, typer.Option("--dst", "-d", help="Folder to copy into (default: this folder).")
    ] = Path("."),
    json: JsonFlag = False,
) -> None:
    """Copy a run's artifact, or a folder of them, or all of them, into a local folder;
    each file's bytes are checked against its digest."""
    settings = settings_of(ctx)
    client = FerryClient(settings)
    target = dst if dst.is_absolute() else settings.workdir / dst
    entries = client.list_artifacts(run_id, path)
    written = client.download_artifacts(run_id, path, target)
    if json:
        render.print_json({"path": str(written), "files": len(entries)})
        return
    total = sum(e.size for e in entries)
    files = "1 file" if len(entries) == 1 else f"{len(entries)} files"
    render.console.print(f"Downloaded {files} ({render.size(total)}) to {written}")
