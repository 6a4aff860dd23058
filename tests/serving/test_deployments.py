"""Deployments: weighted and sticky routes, shadows, promote, rollback (by hand and
automatic), history; over the CLI's core, the REST API and real HTTP."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import ferryml as ferry
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.server.main import build_app
from ferryml.serving.deployments import Deployments, RollbackPolicy

pytestmark = pytest.mark.e2e


def _failing(frame: Any) -> Any:
    raise ValueError("this version is broken")


@pytest.fixture
def manager(registered: Any) -> Any:
    with ferry.start_run():  # version 3: fails on every input
        ferry.log_model(_failing, input_example=registered.X.head(), registered_model_name="cancer")
    found = Deployments(registered.settings)
    yield found
    found.close()


def test_create_set_weights_promote_rollback_and_history(manager: Any) -> None:
    spec = manager.create("cancer-api", "cancer", 1, canary=2, canary_weight=20, reason="try v2")
    assert [(r.name, r.role, r.weight) for r in spec.routes] == [
        ("v1", "primary", 80.0),
        ("v2", "canary", 20.0),
    ]
    spec = manager.set_weights("cancer-api", {"v1": 50, "v2": 50}, reason="more")
    assert [r.weight for r in spec.routes] == [50.0, 50.0]
    spec = manager.promote("cancer-api", reason="v2 is good")
    assert [(r.name, r.role, r.weight) for r in spec.routes] == [("v2", "primary", 100.0)]
    spec = manager.rollback("cancer-api", reason="v2 is not good after all")
    assert [(r.name, r.role) for r in spec.routes] == [("v1", "primary"), ("v2", "canary")]
    history = manager.history("cancer-api")
    assert [(e.action, e.reason) for e in history] == [
        ("create", "try v2"),
        ("set_weights", "more"),
        ("promote", "v2 is good"),
        ("rollback", "v2 is not good after all"),
    ]
    assert all(e.user for e in history)


def test_bad_deployment_changes_are_refused(manager: Any) -> None:
    with pytest.raises(InvalidArgument, match="Deployment name 'Cancer API' is invalid"):
        manager.create("Cancer API", "cancer", 1)
    with pytest.raises(NotFound, match="Model 'cancer' has no version 9"):
        manager.create("api", "cancer", 9)
    manager.create("api", "cancer", 1)
    with pytest.raises(AlreadyExists, match="Deployment 'api' exists already"):
        manager.create("api", "cancer", 1)
    with pytest.raises(NotFound, match="has no route v7; its routes are v1"):
        manager.set_weights("api", {"v7": 10})
    with pytest.raises(InvalidArgument, match="no canary to promote"):
        manager.promote("api")
    with pytest.raises(NotFound, match="Deployment 'nope' not found"):
        manager.get("nope")
    assert [e.action for e in manager.history("api")] == ["create"]


def test_traffic_splits_by_weight_and_sticks_to_a_key(
    manager: Any, registered: Any, serve: Callable[[Any], Any]
) -> None:
    manager.create("split", "cancer", 1, canary=2, canary_weight=30)
    running = serve(build_app(registered.settings, deployment="split", log_predictions=False))
    body = {"records": registered.X.head(1).to_dict("records")}
    routes = Counter(
        running.client.post("/v1/models/split/predict", json=body).json()["route"]
        for _ in range(300)
    )
    assert set(routes) == {"v1", "v2"}
    assert 0.18 < routes["v2"] / 300 < 0.42
    sticky = {
        running.client.post(
            "/v1/models/split/predict", json=body, headers={"x-ferry-key": "customer-42"}
        ).json()["route"]
        for _ in range(30)
    }
    assert len(sticky) == 1


def test_a_shadow_gets_a_copy_and_never_answers(
    manager: Any, registered: Any, serve: Callable[[Any], Any]
) -> None:
    manager.create("shadowed", "cancer", 1, shadow=2)
    running = serve(build_app(registered.settings, deployment="shadowed", log_predictions=False))
    body = {"records": registered.X.head(1).to_dict("records")}
    answers = [
        running.client.post("/v1/models/shadowed/predict", json=body).json() for _ in range(20)
    ]
    assert {a["route"] for a in answers} == {"v1"}
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = running.client.get("/metrics").text
        if 'route="v2",status="ok",version="2"} 20.0' in text:
            break
        time.sleep(0.05)
    assert 'route="v2",status="ok",version="2"} 20.0' in text


def test_a_failing_canary_is_rolled_back_automatically(
    manager: Any, registered: Any, serve: Callable[[Any], Any]
) -> None:
    manager.create(
        "guarded",
        "cancer",
        1,
        canary=3,
        canary_weight=50,
        policy=RollbackPolicy(error_margin=0.1, min_requests=10),
    )
    running = serve(build_app(registered.settings, deployment="guarded", log_predictions=False))
    body = {"records": registered.X.head(1).to_dict("records")}
    statuses = [
        running.client.post("/v1/models/guarded/predict", json=body).status_code for _ in range(80)
    ]
    assert 422 in statuses  # the canary's answers were errors...
    assert statuses[-20:] == [200] * 20  # ...until it lost its traffic
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = manager.history("guarded")
        if events[-1].action == "auto_rollback":
            break
        time.sleep(0.05)
    assert events[-1].action == "auto_rollback" and events[-1].user == "ferryml"
    assert "error rate" in events[-1].reason
    assert manager.get("guarded").route("canary").weight == 0.0


def test_the_rest_api_changes_weights_and_records_why(
    manager: Any, registered: Any, serve: Callable[[Any], Any]
) -> None:
    manager.create("rest", "cancer", 1, canary=2, canary_weight=10)
    running = serve(build_app(registered.settings, deployment="rest", log_predictions=False))
    r = running.client.post(
        "/api/v1/deployments/rest/weights",
        json={"weights": {"v1": 0, "v2": 100}, "reason": "all in"},
    )
    assert r.status_code == 200 and r.json()["routes"][1]["weight"] == 100
    assert running.client.get("/api/v1/deployments/rest").json()["routes"][0]["weight"] == 0
    history = running.client.get("/api/v1/deployments/rest/history").json()
    assert history[-1]["reason"] == "all in"
    r = running.client.post("/api/v1/deployments/rest/explode", json={})
    assert r.status_code == 404
    r = running.client.post("/api/v1/deployments/rest/weights", json={"weights": "x"})
    assert r.status_code == 422
