"""What every command reads from the root command: the resolved settings."""

from __future__ import annotations

import sys

import typer

from ferryml.config import Settings


def settings_of(ctx: typer.Context, *, announce: bool = True) -> Settings:
    """The settings ``ferry``'s global options (``--home``, ``--store``, …) resolved.

    With ``announce``, the first call of a command that is about to create a new embedded
    store in the default place says where, on stderr: a store created in the wrong folder
    is otherwise silent. A place chosen with ``--home`` or a variable is not announced.
    """
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = root.obj()  # the root command's Settings.resolve, called once
    settings = root.obj
    assert isinstance(settings, Settings)
    chosen = {settings.sources.get("home"), settings.sources.get("store")} - {"default", None}
    if announce and not chosen and settings.new_store and not root.meta.get("ferry.announced"):
        root.meta["ferry.announced"] = True
        print(
            f"ferry: new store {settings.store_url} for project {settings.root} (see `ferry info`)",
            file=sys.stderr,
        )
    return settings
