"""Deployments: weighted and sticky routes, shadows, promote, rollback (by hand and
automatic), history; over the CLI's core, the REST API and real HTTP."""

from __future__ import annotations

import json
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


def _routes_taken(running: Any, deployment: str, body: Any, requests: int) -> Counter[str]:
    url = f"/v1/models/{deployment}/predict"
    return Counter(running.client.post(url, json=body).json()["route"] for _ in range(requests))


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
    with pytest.raises(InvalidArgument, match="Deployment name 'Cancer API' is invalid: use 1 to"):
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
    with pytest.raises(NotFound) as caught:
        manager.get("apj")
    assert str(caught.value) == (
        "Deployment 'apj' not found. Did you mean 'api'? See `ferry deploy list`."
    )
    assert [e.action for e in manager.history("api")] == ["create"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m.add_route("api", 2, weight=500),
            "Weight 500 for route v2 is out of range: give a percent of the traffic from 0 to 100.",
        ),
        (
            lambda m: m.set_weights("api", {"v2": 150}),
            "Weight 150 for route v2 is out of range: give a percent of the traffic from 0 to 100.",
        ),
        (
            lambda m: m.set_weights("api", {"v1": -5, "v2": 105}),
            "Weight -5 for route v1 is out of range: give a percent of the traffic from 0 to 100.",
        ),
        (
            lambda m: m.set_weights("api", {"v2": 20}),
            "Weights of deployment 'api' must add up to 100; got v1=90 + v2=20 = 110. Give "
            "every route's weight, e.g. `ferry deploy set-weights api v1=50 v2=50`.",
        ),
        (
            lambda m: m.set_weights("api", {"v1": 0, "v2": 100}),
            "That would send all the traffic of deployment 'api' to canary v2, which is not "
            "promoted: run `ferry deploy promote api`.",
        ),
        (
            lambda m: m.add_route("api", 3, weight=100),
            "That would send all the traffic of deployment 'api' to canary v3, which is not "
            "promoted: run `ferry deploy promote api`.",
        ),
        (
            lambda m: m.create("other", "cancer", 1, canary=2, canary_weight=250),
            "Weight 250 for route v2 is out of range: give a percent of the traffic from 0 to 100.",
        ),
    ],
)
def test_weights_out_of_range_off_sum_or_all_to_the_canary_are_refused(
    manager: Any, change: Callable[[Any], Any], message: str
) -> None:
    manager.create("api", "cancer", 1, canary=2, canary_weight=10)
    with pytest.raises(InvalidArgument) as caught:
        change(manager)
    assert str(caught.value) == message
    assert [(r.name, r.weight) for r in manager.get("api").routes] == [("v1", 90.0), ("v2", 10.0)]
    assert [e.action for e in manager.history("api")] == ["create"]


def test_the_cli_refuses_bad_weights_in_one_line(
    manager: Any, registered: Any, cli: Callable[..., Any]
) -> None:
    home = ("--home", str(registered.settings.home))
    manager.create("wine-api", "cancer", 1)
    code, _, err = cli(*home, "deploy", "add-route", "wine-api", "2", "--weight", "500")
    assert (code, err) == (
        2,
        "error: Weight 500 for route v2 is out of range: give a percent of the traffic from 0 "
        "to 100.\n",
    )
    manager.add_route("wine-api", 2, weight=10)
    code, _, err = cli(*home, "deploy", "set-weights", "wine-api", "v1=0", "v2=100")
    assert (code, err) == (
        2,
        "error: That would send all the traffic of deployment 'wine-api' to canary v2, which "
        "is not promoted: run `ferry deploy promote wine-api`.\n",
    )
    code, out, _ = cli(*home, "deploy", "promote", "wine-api", "--json")
    assert code == 0 and json.loads(out)["routes"] == [
        {"version": 2, "weight": 100.0, "role": "primary"}
    ]


def test_traffic_splits_by_weight_and_sticks_to_a_key(
    manager: Any, registered: Any, serve: Callable[[Any], Any]
) -> None:
    manager.create("split", "cancer", 1, canary=2, canary_weight=30)
    running = serve(build_app(registered.settings, deployment="split", log_predictions=False))
    body = {"records": registered.X.head(1).to_dict("records")}
    routes = _routes_taken(running, "split", body, 300)
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


def _slow(frame: Any) -> Any:
    time.sleep(0.05)
    return [1] * len(frame)


def _two_hiccups(frame: Any, calls: list[int] = [0]) -> Any:  # noqa: B006 - the model's own count
    calls[0] += 1
    if calls[0] in (23, 34):  # a pause of the machine's, not of the model's
        time.sleep(0.3)
    return [1] * len(frame)


@pytest.mark.parametrize(("model", "rolled_back"), [(_slow, True), (_two_hiccups, False)])
def test_a_slower_canary_is_rolled_back_and_a_hiccup_is_not(
    registered: Any, serve: Callable[[Any], Any], model: Any, rolled_back: bool
) -> None:
    with ferry.start_run():
        ferry.log_model(model, input_example=registered.X.head(), registered_model_name="timed")
        ferry.log_model(
            registered.good, input_example=registered.X.head(), registered_model_name="timed"
        )
    manager = Deployments(registered.settings)
    manager.create("timed", "timed", 2, canary=1, canary_weight=50)
    running = serve(build_app(registered.settings, deployment="timed", log_predictions=False))
    body = {"records": registered.X.head(1).to_dict("records")}
    # enough that the canary's half is judged whatever the split's luck: its latencies count
    # after its first WARM_UP answers, and are judged every tenth request from min_requests
    routes = _routes_taken(running, "timed", body, 200)
    deadline = time.monotonic() + (10 if rolled_back else 1)
    while time.monotonic() < deadline and manager.history("timed")[-1].action != "auto_rollback":
        time.sleep(0.05)
    last = manager.history("timed")[-1]
    manager.close()
    if rolled_back:
        assert last.action == "auto_rollback", last.reason
        assert "over the same stretch" in last.reason
        assert routes["v1"] < 90  # it lost its traffic on the way (its half is 100)
    else:
        assert last.action != "auto_rollback", last.reason
        assert routes["v1"] > 70


def test_the_model_server_changes_no_deployment(
    manager: Any, registered: Any, serve: Callable[[Any], Any]
) -> None:
    # Changes go through the team server, which asks for a maintainer's token.
    manager.create("rest", "cancer", 1, canary=2, canary_weight=10)
    running = serve(build_app(registered.settings, deployment="rest", log_predictions=False))
    r = running.client.post(
        "/api/v1/deployments/rest/weights", json={"weights": {"v1": 40, "v2": 60}}
    )
    assert r.status_code == 404
    assert manager.get("rest").route("canary").weight == 10
