"""The ``ferry`` command line. Handlers parse, call the core, and render."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports
from ferryml.cli._app import main

__all__ = ["app", "main"]
# ``app``, the whole Typer app, imports every command's module: built on first use, so that
# ``ferry CMD`` (main) imports only CMD's.
__getattr__, __dir__ = lazy_exports(__name__, {"app": "ferryml.cli._app"})

if TYPE_CHECKING:
    from ferryml.cli._app import app
