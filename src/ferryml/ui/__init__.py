"""The web UI: page shells rendered on the server, small scripts that read the team
server's JSON API, served by ``ferry server`` at ``/`` and by ``ferry ui``.

A page is a module in ``ferryml.ui.pages`` (its ``router`` and ``NAV`` entry), a template
in ``templates/`` and, when it needs one, a script in ``static/``: see ``_pages.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

if TYPE_CHECKING:
    from ferryml.ui._app import include_ui, serve_ui

__all__ = ["include_ui", "serve_ui"]

__getattr__, __dir__ = lazy_exports(
    __name__, {"include_ui": "ferryml.ui._app", "serve_ui": "ferryml.ui._app"}
)
