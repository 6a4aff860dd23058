"""What every command reads from the root command: the resolved settings."""

from __future__ import annotations

import typer

from ferryml.config import Settings


def settings_of(ctx: typer.Context) -> Settings:
    """The settings ``ferry``'s global options (``--home``, ``--store``, …) resolved."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings
