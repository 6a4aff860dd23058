"""The ``ferry`` command line. Handlers parse, call the core, and render."""

from ferryml.cli._app import app, main

__all__ = ["app", "main"]
