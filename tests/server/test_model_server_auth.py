"""The model server over a team server's store: feedback, its one write, needs a writer's
token of that team server, checked there."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from team_world import TeamServer, free_port

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import PermissionDenied, Unauthenticated
from ferryml.server.main import build_app
from ferryml.server.model._auth import writer_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_server(
    sqlite_team_server: TeamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings]]:
    team = sqlite_team_server
    folder: Path = tmp_path_factory.mktemp("model-server")
    local = Settings.resolve(
        home=folder / "home",
        store=team.store_url,
        artifacts=team.artifacts_url,
        cwd=folder,
        environ={},
    )
    ferry.configure(home=local.home, store=local.store_url, artifacts=local.artifacts_url)
    X, y = load_iris(return_X_y=True, as_frame=True)
    with ferry.start_run():
        ferry.log_model(LogisticRegression(max_iter=300).fit(X, y), registered_model_name="iris")
    ferry.configure(home=local.home)
    remote = Settings.resolve(
        home=folder / "client",
        cwd=folder,
        environ={"FERRY_TRACKING_URI": team.url, "FERRY_TOKEN": team.tokens["reader"]},
    )
    app = build_app(remote, "iris/1", log_predictions=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", remote
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.parametrize(
    ("role", "status", "says"),
    [
        (None, 401, "Sending feedback needs a writer's token of the team server"),
        ("bogus", 401, "The team server refused this token"),
        ("reader", 403, "Sending feedback needs the writer role; 'reader' is a reader."),
    ],
)
def test_feedback_without_a_writers_token_is_refused(
    model_server: tuple[str, Settings],
    sqlite_team_server: TeamServer,
    role: str | None,
    status: int,
    says: str,
) -> None:
    url, _ = model_server
    token = sqlite_team_server.tokens.get(role or "", "not-a-token") if role else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(f"{url}/v1/feedback", json={"prediction_id": "p1", "label": 1}, headers=headers)
    assert r.status_code == status and r.json()["error"]["message"].startswith(says)
    assert (
        httpx.post(
            f"{url}/v1/models/iris/predict",
            json={
                "records": [
                    dict.fromkeys(
                        (
                            "sepal length (cm)",
                            "sepal width (cm)",
                            "petal length (cm)",
                            "petal width (cm)",
                        ),
                        1.0,
                    )
                ]
            },
        ).status_code
        == 200
    )


def test_a_writers_token_is_what_the_feedback_is_written_with(
    model_server: tuple[str, Settings], sqlite_team_server: TeamServer
) -> None:
    _, remote = model_server
    token = sqlite_team_server.tokens["writer"]
    settings = asyncio.run(writer_settings(remote, f"Bearer {token}"))
    assert settings == dataclasses.replace(remote, token=token)
    with pytest.raises(Unauthenticated):
        asyncio.run(writer_settings(remote, "Basic abc"))
    with pytest.raises(PermissionDenied):
        asyncio.run(writer_settings(remote, f"Bearer {sqlite_team_server.tokens['reader']}"))


def test_over_a_local_store_feedback_needs_no_token(tmp_path: Path) -> None:
    local = Settings.resolve(home=tmp_path / "home", cwd=tmp_path, environ={})
    assert asyncio.run(writer_settings(local, None)) is local
