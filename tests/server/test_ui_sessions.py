"""A web UI session lasts ``--session-hours``: after that its cookie gets the sign-in page
and a 401, not a 500, while tokens made for scripts keep working."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from team_world import running_server

from ferryml.server.team._auth import SESSION_COOKIE
from ferryml.store import _schema as t
from ferryml.store.sql import SqlStore

pytestmark = pytest.mark.e2e

HOUR_MS = 3600 * 1000


def _age_sessions(store_url: str, hours: float) -> None:
    store = SqlStore(store_url).open()
    try:
        with store.engine.begin() as conn:
            conn.execute(
                update(t.tokens)
                .where(t.tokens.c.label == "web UI session")
                .values(creation_time=t.tokens.c.creation_time - int(hours * HOUR_MS))
            )
    finally:
        store.close()


def test_an_expired_session_gets_the_sign_in_page(store_url: str, tmp_path: Path) -> None:
    servers = running_server(store_url, tmp_path, args=("--session-hours", "2"))
    server = next(servers)
    form = {"user": "writer", "token": server.tokens["writer"], "next": "/"}
    try:
        with httpx.Client(base_url=server.url) as old, httpx.Client(base_url=server.url) as new:
            signed = old.post("/signin", data=form)
            assert signed.status_code == 303
            assert "max-age=7200" in signed.headers["set-cookie"].lower()
            _age_sessions(store_url, 2.5)
            assert new.post("/signin", data=form).status_code == 303
            _age_sessions(store_url, 1.5)  # the old session 4 hours old, the new one 1.5
            assert new.get("/experiments").status_code == 200
            page = old.get("/experiments")
            assert page.status_code == 303 and page.headers["location"].startswith("/signin")
            assert "Sign in" in old.get("/experiments", follow_redirects=True).text
            refused = old.get("/api/v1/experiments")
            assert refused.status_code == 401
            assert "has expired; sign in again" in refused.json()["error"]["message"]
            # The session's token expires however it is sent, and opens no other session.
            bearer = {"Authorization": f"Bearer {old.cookies.get(SESSION_COOKIE)}"}
            refused = httpx.get(f"{server.url}/api/v1/experiments", headers=bearer)
            assert refused.status_code == 401
            assert "has expired; sign in again" in refused.json()["error"]["message"]
            own = {**form, "token": str(new.cookies.get(SESSION_COOKIE))}
            assert httpx.post(f"{server.url}/signin", data=own).status_code == 401
        _age_sessions(store_url, 100)
        with httpx.Client(base_url=server.url) as http:  # a script's token does not expire
            headers = {"Authorization": f"Bearer {server.tokens['writer']}"}
            assert http.get("/api/v1/experiments", headers=headers).status_code == 200
    finally:
        servers.close()


def test_session_hours_must_be_positive(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ferryml.cli import app

    result = CliRunner().invoke(app, ["server", "--session-hours", "0"])
    assert result.exit_code == 2
    assert "--session-hours" in result.output
