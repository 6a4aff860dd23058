"""``ferry info``: which project, config file and stores this folder uses."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def info(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Show the project root, its ferry.yaml, and the store, artifacts and server in use
    (passwords hidden), each with where it came from."""
    described = settings_of(ctx, announce=False).describe()
    if json:
        render.print_json(described)
        return
    sources = described["sources"]
    for key in ("root", "config_file", "home", "store", "artifacts", "server", "remote"):
        value, source = described[key], sources.get(key)
        shown = f"{value}  ({source})" if value is not None and source else (value or "none")
        render.console.print(f"{key + ':':<13}{shown}")
