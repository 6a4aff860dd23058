"""The team server: one HTTP API over every store, with users, tokens and roles.

``create_team_app`` builds the app from small routers, one per aggregate; ``serve_team``
runs it (``ferry server``).
"""

from __future__ import annotations

from ferryml.server.team.app import create_team_app, serve_team

__all__ = ["create_team_app", "serve_team"]
