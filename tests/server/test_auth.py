"""Every route of the team server asks for a token, and for the role its change needs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from team_world import FERRY, TeamServer

from ferryml.server.team._auth import READ_POSTS

pytestmark = pytest.mark.e2e

_DIGEST = "0" * 64
# Routes that need more than the writer role, and the role they name.
_NEEDS = {
    ("PUT", "/api/v1/models/{name}/aliases/{alias}"): "maintainer",
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}"): "maintainer",
    ("DELETE", "/api/v1/models/{name}"): "maintainer",
    ("DELETE", "/api/v1/models/{name}/versions/{version}"): "maintainer",
    ("PUT", "/api/v1/deployments/{name}"): "maintainer",
    ("POST", "/api/v1/deployments/{name}/weights"): "maintainer",
    ("POST", "/api/v1/deployments/{name}/promote"): "maintainer",
    ("POST", "/api/v1/deployments/{name}/rollback"): "maintainer",
    ("POST", "/api/v1/deployments/{name}/spec"): "maintainer",
    ("DELETE", "/api/v1/runs/{run_id}"): "maintainer",
    ("DELETE", "/api/v1/experiments/{experiment_id}"): "maintainer",
    ("PUT", "/api/v1/monitors/{name}"): "maintainer",
    ("DELETE", "/api/v1/monitors/{name}"): "maintainer",
    ("POST", "/api/v1/monitors/{name}/windows"): "maintainer",
    ("POST", "/api/v1/alerts/transitions"): "maintainer",
    ("POST", "/api/v1/alerts/{alert_id}/deliveries"): "maintainer",
    ("POST", "/api/v1/decisions"): "maintainer",
    ("POST", "/api/v1/decisions/{decision_id}/advance"): "maintainer",
    ("POST", "/api/v1/decisions/{decision_id}/approve"): "maintainer",
    ("POST", "/api/v1/decisions/{decision_id}/reject"): "maintainer",
    ("PUT", "/api/v1/policies/{policy}/state"): "maintainer",
    ("POST", "/api/v1/leases/{name}"): "maintainer",
    ("DELETE", "/api/v1/leases/{name}"): "maintainer",
    ("POST", "/api/v1/schedules"): "maintainer",
    ("DELETE", "/api/v1/schedules/{name}"): "maintainer",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("PATCH", "/api/v1/users/{name}"): "admin",
    ("PUT", "/api/v1/maintainers/{kind}/{name}/{user}"): "admin",
    ("DELETE", "/api/v1/maintainers/{kind}/{name}/{user}"): "admin",
}


def _routes(server: TeamServer) -> list[tuple[str, str]]:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method in item
    ]


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: _DIGEST if m.group(0) == "{digest}" else "x", path)


def _error(r: httpx.Response) -> tuple[str, str]:
    """(type, message) of ferryml's error, or of MLflow's on MLflow's routes."""
    body = r.json()
    if "error_code" in body:
        return body["error_code"], body["message"]
    return body["error"]["type"], body["error"]["message"]


def test_every_api_route_refuses_a_request_without_a_token(shared_team_server: TeamServer) -> None:
    routes = _routes(shared_team_server)
    assert len(routes) > 30
    assert sum("/mlflow" in path for _, path in routes) > 50
    for method, path in routes:
        r = httpx.request(method, shared_team_server.url + _fill(path), json={})
        assert r.status_code == 401, (method, path, r.text)
        if method != "HEAD":  # a HEAD answer has no body
            kind, message = _error(r)
            assert kind in ("Unauthenticated", "UNAUTHENTICATED")
            assert "FERRY_TOKEN" in message


def test_a_reader_reads_and_changes_nothing(shared_team_server: TeamServer) -> None:
    with shared_team_server.http("reader") as reader:
        for method, path in _routes(shared_team_server):
            r = reader.request(method, _fill(path), json={})
            if (method, path) in _NEEDS:
                assert r.status_code == 403, (method, path, r.text)
            elif method in ("GET", "HEAD") or path in READ_POSTS:
                assert r.status_code not in (401, 403), (method, path, r.text)
            else:
                assert r.status_code == 403, (method, path, r.text)
                assert "needs writer" in _error(r)[1]


def test_routes_that_need_more_than_a_writer_name_the_role(shared_team_server: TeamServer) -> None:
    below = {"maintainer": "writer", "admin": "maintainer"}
    routes = set(_routes(shared_team_server))
    assert set(_NEEDS) <= routes
    for (method, path), needed in _NEEDS.items():
        with shared_team_server.http(below[needed]) as client:
            r = client.request(method, _fill(path), json={})
        assert r.status_code == 403, (method, path, r.text)
        assert f"needs {needed}" in r.json()["error"]["message"]


def test_bad_revoked_and_disabled_tokens_are_refused(shared_team_server: TeamServer) -> None:
    with httpx.Client(base_url=shared_team_server.url) as anon:
        r = anon.get("/api/v1/experiments", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401 and "malformed" in r.json()["error"]["message"]
        forged = shared_team_server.tokens["writer"][:-4] + "AAAA"
        r = anon.get("/api/v1/experiments", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and "unknown" in r.json()["error"]["message"]
    with shared_team_server.http("admin") as admin:
        made = admin.post("/api/v1/tokens", json={"user": "reader", "label": "ci"}).json()
        assert made["user"] == "reader"
        r = httpx.get(
            f"{shared_team_server.url}/api/v1/whoami",
            headers={"Authorization": f"Bearer {made['token']}"},
        )
        assert r.json()["name"] == "reader"
        assert admin.delete(f"/api/v1/tokens/{made['token_id']}").status_code == 200
        r = httpx.get(
            f"{shared_team_server.url}/api/v1/whoami",
            headers={"Authorization": f"Bearer {made['token']}"},
        )
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        assert admin.patch("/api/v1/users/owner", json={"disabled": True}).status_code == 200
    with shared_team_server.http("owner") as owner:
        r = owner.get("/api/v1/whoami")
        assert r.status_code == 401 and "disabled" in r.json()["error"]["message"]


def test_a_user_manages_only_their_own_tokens(shared_team_server: TeamServer) -> None:
    with shared_team_server.http("admin") as admin:
        theirs = admin.post("/api/v1/tokens", json={"user": "maintainer"}).json()
    with shared_team_server.http("writer") as writer:
        r = writer.post("/api/v1/tokens", json={"user": "maintainer"})
        assert r.status_code == 403 and "own tokens" in r.json()["error"]["message"]
        r = writer.delete(f"/api/v1/tokens/{theirs['token_id']}")
        assert r.status_code == 403
        mine = writer.post("/api/v1/tokens", json={"label": "laptop"}).json()
        assert mine["user"] == "writer"
        listed = writer.get("/api/v1/tokens").json()
        assert {t["user"] for t in listed} == {"writer"}
        assert all("secret" not in t and "token" not in t for t in listed)


def test_tokens_are_stored_only_as_hashes(shared_team_server: TeamServer) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(shared_team_server.store_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT token_id, secret_hash FROM tokens")).all()
    engine.dispose()
    secrets = [t.rsplit("_", 1)[1] for t in shared_team_server.tokens.values()]
    stored = " ".join(f"{a} {b}" for a, b in rows)
    assert rows and not any(secret in stored for secret in secrets)


def test_no_auth_is_refused_beyond_loopback(tmp_path: Path) -> None:
    result = subprocess.run(
        [FERRY, "server", "--no-auth", "--host", "0.0.0.0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "error: --no-auth is allowed only on a loopback address"
    )
