"""``ferry ui``: the web UI over this project's own store, on a loopback address."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 5050,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the UI in the web browser.")
    ] = True,
) -> None:
    """Show runs, models and the rest of this project's store in the browser, at
    http://127.0.0.1:PORT/ (loopback only, no sign-in). A team server shows the same UI at
    its own URL."""
    from ferryml.errors import InvalidArgument
    from ferryml.store.factory import is_server_url
    from ferryml.ui import serve_ui

    settings = settings_of(ctx)
    if is_server_url(settings.store_url):
        raise InvalidArgument(
            f"ferry ui shows a local store, and this project uses the team server "
            f"{settings.store_url}: open that URL in the browser instead."
        )
    render.console.print(f"ferry ui on http://127.0.0.1:{port}/ (store {settings.store_url})")
    serve_ui(settings, port=port, browser=browser)
