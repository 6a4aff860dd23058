"""The closed loop's stores keep one contract, in SQL and over a team server: monitors and
their windows, alerts, prediction partitions and feedback, policies, the lease and
decisions. The same test functions run against both; through the server, who approved a
decision or gave a label is the token's user."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from team_world import TeamServer

from ferryml.config import Settings
from ferryml.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ferryml.serving.predlog import PredictionLog
from ferryml.store.factory import (
    open_alert_store,
    open_automation_store,
    open_monitor_store,
    open_prediction_store,
    open_request_error_store,
)
from ferryml.store.loop import Alert, AlertState, Delivery, Feedback, PredictionPartition
from ferryml.store.request_errors import RequestErrorCount, RequestErrors

pytestmark = pytest.mark.e2e

_SPEC = {
    "name": "",
    "deployment": "churn",
    "reference": "model:churn@champion",
    "window": "1h",
    "task": None,
    "rules": ["drift_share > 0.3"],
    "channels": [],
    "checks": ["drift"],
}


@pytest.fixture(scope="module", params=["sql", "http"])
def settings(
    request: pytest.FixtureRequest, sqlite_team_server: TeamServer, tmp_path_factory: Path
) -> Settings:
    """The settings of a client of the SQL store itself, or of the team server over it,
    as a maintainer."""
    home = tmp_path_factory.mktemp("client") / "home"  # type: ignore[attr-defined]
    server = sqlite_team_server
    if request.param == "sql":
        return Settings(home=home, store_url=server.store_url, artifacts_url=server.artifacts_url)
    return Settings(
        home=home, store_url=server.url, artifacts_url=server.url, token=server.tokens["maintainer"]
    )


def _through_server(settings: Settings) -> bool:
    return settings.store_url.startswith("http")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_monitors_are_created_listed_and_removed_with_their_windows(settings: Settings) -> None:
    store = open_monitor_store(settings)
    name = _name("watch")
    spec = {**_SPEC, "name": name}
    try:
        store.create(name, spec)
        with pytest.raises(AlreadyExists, match="exists already"):
            store.create(name, spec)
        assert store.get(name) == spec
        assert (name, spec) in store.list_monitors()
        assert store.last_window(name) is None
        drift = {"dataset_drift": False, "statistic": float("nan")}
        assert store.add_result(name, 0, 3_600_000, {"rows": 10.0}, drift) is True
        assert store.add_result(name, 0, 3_600_000, {"rows": 99.0}, {}) is False  # stored once
        assert store.add_result(name, 3_600_000, 7_200_000, {"rows": 12.0}, {}) is True
        assert store.last_window(name) == (3_600_000, 7_200_000)
        results = store.list_results(name)
        assert [(r.window_start, r.metrics["rows"]) for r in results] == [
            (0, 10.0),
            (3_600_000, 12.0),
        ]
        assert results[0].drift["dataset_drift"] is False
        assert results[0].drift["statistic"] != results[0].drift["statistic"]  # NaN kept
        assert [r.window_end for r in store.list_results(name, ended_after=3_600_000)] == [
            7_200_000
        ]
        assert store.remove_results(name, ended_after=3_600_000) == 1  # to check it again
        assert store.last_window(name) == (0, 3_600_000)
        assert store.add_result(name, 3_600_000, 7_200_000, {"rows": 13.0}, {}) is True
        assert store.remove(name) == 2
        with pytest.raises(NotFound, match="ferry monitor list"):
            store.get(name)
        with pytest.raises(NotFound, match="ferry monitor list"):
            store.remove(name)
        with pytest.raises(NotFound, match="ferry monitor list"):
            store.remove_results(name, ended_after=0)
    finally:
        store.close()


def test_alert_transitions_record_state_alerts_and_deliveries(settings: Settings) -> None:
    store = open_alert_store(settings)
    monitor, rule = _name("mon"), "drift_share > 0.3 for 2 windows"
    try:
        assert store.get_state(monitor, rule) == AlertState(monitor, rule)

        def count(state: AlertState) -> tuple[AlertState, Alert | None]:
            return dataclasses.replace(state, consecutive=state.consecutive + 1), None

        assert store.transition(monitor, rule, count) is None
        assert store.get_state(monitor, rule).consecutive == 1
        fired = Alert(0, 5, monitor, rule, "drift_share", ">", 0.4, 0.3, None, "fired", "m", 0, 9)

        def fire(state: AlertState) -> tuple[AlertState, Alert | None]:
            return dataclasses.replace(state, firing=True, last_fired=9), fired

        alert = store.transition(monitor, rule, fire)
        assert alert is not None and alert.id > 0
        assert dataclasses.replace(alert, id=0) == fired
        assert store.get_state(monitor, rule).firing is True
        store.record_delivery(alert.id, Delivery("ops", 2, False, "timed out", 7))
        store.record_delivery(alert.id, Delivery("ops", 3, True, None, 8))  # replaces it
        store.record_delivery(alert.id, Delivery("log", 1, True, None, 8))
        got = store.get_alert(alert.id)
        assert got.deliveries == (
            Delivery("log", 1, True, None, 8),
            Delivery("ops", 3, True, None, 8),
        )
        assert [a.id for a in store.list_alerts(monitor=monitor)] == [alert.id]
        assert store.list_alerts(monitor=monitor, rule="another") == []
        with pytest.raises(NotFound, match="ferry alerts list"):
            store.get_alert(2**31 - 1)
        with pytest.raises(InvalidArgument, match="at least 1"):
            store.list_alerts(limit=0)
    finally:
        store.close()


def test_an_alert_transition_over_http_that_loses_a_race_steps_again_from_the_new_state(
    sqlite_team_server: TeamServer, tmp_path: Path
) -> None:
    # In SQL the transition locks the rule's row, so a rival waits instead of racing.
    server = sqlite_team_server
    settings = Settings(
        home=tmp_path,
        store_url=server.url,
        artifacts_url=server.url,
        token=server.tokens["maintainer"],
    )
    store, rival = open_alert_store(settings), open_alert_store(settings)
    monitor, rule = _name("race"), "accuracy < 0.8"
    seen: list[int] = []

    def count(state: AlertState) -> tuple[AlertState, Alert | None]:
        seen.append(state.consecutive)
        if len(seen) == 1:  # another writer moves the state meanwhile
            rival.transition(monitor, rule, lambda s: (dataclasses.replace(s, consecutive=5), None))
        return dataclasses.replace(state, consecutive=state.consecutive + 1), None

    try:
        store.transition(monitor, rule, count)
        assert store.get_state(monitor, rule).consecutive == 6  # counted on top of the rival's
        assert seen[-1] == 5
    finally:
        store.close()
        rival.close()


def test_partitions_are_indexed_once_and_found_by_time_and_id(settings: Settings) -> None:
    store = open_prediction_store(settings)
    deployment = _name("dep")
    a, b = (uuid.uuid4().hex * 2 for _ in range(2))  # the stores share one database
    first = PredictionPartition(a, deployment, 3, 100, 200, "id-a", "id-c", 1)
    second = PredictionPartition(b, deployment, 2, 300, 400, "id-d", "id-e", 2)
    try:
        store.create_partitions([first, second])
        store.create_partitions([first])  # again: nothing changes
        assert store.list_partitions(deployment) == [first, second]
        assert store.list_partitions(deployment, since=250) == [second]
        assert store.list_partitions(deployment, until=150) == [first]
        assert deployment in store.list_deployments()
        found = store.search_partitions_by_id("id-b", "id-b")
        assert [p.digest for p in found if p.deployment == deployment] == [a]
    finally:
        store.close()


def test_compaction_swaps_partitions_at_once_and_a_lost_race_changes_nothing(
    settings: Settings,
) -> None:
    store = open_prediction_store(settings)
    deployment = _name("dep")
    a, b, c, x, y = (uuid.uuid4().hex * 2 for _ in range(5))
    small = [
        PredictionPartition(d, deployment, 1, i, i, f"id-{i}", f"id-{i}", 1)
        for i, d in enumerate((a, b, c))
    ]
    merged = PredictionPartition(x, deployment, 2, 0, 1, "id-0", "id-1", 5)
    try:
        store.create_partitions(small)
        assert store.replace_partitions([a, b], [merged]) is True
        assert store.list_partitions(deployment) == [merged, small[2]]
        rival = PredictionPartition(y, deployment, 2, 1, 2, "id-1", "id-2", 6)
        assert store.replace_partitions([b, c], [rival]) is False  # b was taken: no change
        assert store.list_partitions(deployment) == [merged, small[2]]
    finally:
        store.close()


def test_failed_requests_are_counted_once_per_batch_and_summed_per_slot(
    settings: Settings,
) -> None:
    store = open_request_error_store(settings)
    deployment = _name("err")
    rows = [
        RequestErrors("seg-a", deployment, "v1", 1, 500, 10_000, 3, "model failed: boom"),
        RequestErrors("seg-a", deployment, "v1", 1, 500, 11_000, 2, "model failed: bang"),
        RequestErrors("seg-b", deployment, "v1", 1, 500, 11_000, 1, "model failed: bang"),
        RequestErrors("seg-a", deployment, "", 0, 422, 19_000, 4, "The body is not JSON"),
        RequestErrors("seg-a", deployment, "v2", 2, 503, 25_000, 5, "overloaded"),
    ]
    try:
        store.create_request_errors(rows)
        store.create_request_errors(rows[:2])  # a batch replayed: counted once
        found = store.count_request_errors(deployment, since=10_000, until=25_000, width_ms=5_000)
        assert found == [
            RequestErrorCount("", 0, 422, 1, 4),
            RequestErrorCount("v1", 1, 500, 0, 6),  # three rows of slot 0, summed
        ]  # v2's second is the span's end: out
        latest = store.latest_request_errors(deployment, since=11_000, limit=2)
        assert [(e.route, e.time, e.error) for e in latest] == [
            ("v2", 25_000, "overloaded"),
            ("", 19_000, "The body is not JSON"),
        ]
        (only,) = store.latest_request_errors(deployment, since=0, limit=1, route="v1")
        assert only.route == "v1"
        assert store.count_request_errors("nothing", since=0, until=1, width_ms=1) == []
    finally:
        store.close()


def test_feedback_is_replaced_by_id_and_records_who_gave_it(settings: Settings) -> None:
    store = open_prediction_store(settings)
    deployment = _name("fb")
    rows = [
        Feedback("p1-" + deployment, deployment, 100, "1", 1000),
        Feedback("p2-" + deployment, deployment, 200, "0", 1000),
    ]
    try:
        assert store.upsert_feedback(rows, user="mallory") == set()
        again = [dataclasses.replace(rows[0], label="0", time=2000)]
        assert store.upsert_feedback(again, user="mallory") == {"p1-" + deployment}
        found = {f.prediction_id: f for f in store.list_feedback(deployment)}
        assert found["p1-" + deployment].label == "0"
        who = "maintainer" if _through_server(settings) else "mallory"
        assert {f.user for f in found.values()} == {who}  # through a server: the token's user
        assert [f.prediction_time for f in store.list_feedback(deployment, since=150)] == [200]
        assert [f.label for f in store.list_feedback(deployment, recorded_after=1500)] == ["0"]
    finally:
        store.close()


def test_policy_state_and_the_lease_is_held_by_one_agent_at_a_time(settings: Settings) -> None:
    store = open_automation_store(settings)
    policy, lease = _name("policy"), _name("lease")
    try:
        assert store.policy_state(policy) == {}
        store.set_policy_state(policy, {"alert": 3, "schedule": 1700000000000})
        assert store.policy_state(policy) == {"alert": 3, "schedule": 1700000000000}
        assert store.acquire_lease(lease, "a", 30) is True
        assert store.acquire_lease(lease, "b", 30) is False
        assert store.lease_holder(lease) is not None and store.lease_holder(lease)[0] == "a"
        store.release_lease(lease, "a")
        assert store.lease_holder(lease) is None
        assert store.acquire_lease(lease, "b", 30) is True
    finally:
        store.close()


def _decision(store: object, policy: str, state: str = "awaiting_approval") -> int:
    event = ("trigger", "alert 1 fired", {"alert": 1})
    return store.create_decision(policy, "churn", state, {"started": 1}, event)  # type: ignore[attr-defined]


def test_decisions_advance_only_from_the_state_they_were_read_in(settings: Settings) -> None:
    store = open_automation_store(settings)
    policy = _name("retrain")
    try:
        made = _decision(store, policy, "triggered")
        record = store.get_decision(made)
        assert (record.policy, record.state, record.outcome) == (policy, "triggered", None)
        step = ("data", "versioned churn@2", {"data": "churn@2"})
        ctx = {**record.context, "data": "churn@2"}
        assert store.advance(
            made, "triggered", "data_ready", ctx, step, expected_updated=record.updated
        )
        assert not store.advance(made, "triggered", "data_ready", ctx, step)  # moved already
        assert store.get_decision(made).context["data"] == "churn@2"
        assert [(e.seq, e.kind) for e in store.events(made)] == [(1, "trigger"), (2, "data")]
        assert [d.id for d in store.list_decisions(policy=policy, open_only=True)] == [made]
        assert store.count_since(policy, 0) == 1
        assert store.count_since(policy, 2**62) == 0
        with pytest.raises(NotFound, match="ferry decisions list"):
            store.get_decision(2**31 - 1)
    finally:
        store.close()


def test_approving_and_rejecting_record_who_and_happen_once(settings: Settings) -> None:
    store = open_automation_store(settings)
    policy = _name("approval")
    who = "maintainer" if _through_server(settings) else "alice"
    try:
        approved = _decision(store, policy)
        record = store.approve(approved, user="alice", reason="looks good")
        assert (record.state, record.context["approved_by"]) == ("approved", who)
        assert store.events(approved)[-1].message == f"approved by {who}: looks good"
        with pytest.raises(Conflict, match=f"Decision {approved} is approved, not waiting"):
            store.reject(approved, user="alice")
        rejected = _decision(store, policy)
        record = store.reject(rejected, user="alice", reason="not now")
        assert (record.state, record.outcome) == ("done", "rejected")
        assert store.events(rejected)[-1].details == {"user": who, "reason": "not now"}
        with pytest.raises(NotFound):
            store.approve(2**31 - 1, user="alice")
    finally:
        store.close()


# -- the commands, end to end through the server ----------------------------------------------

T0 = pd.Timestamp("2024-06-01T00:00:00Z")
_REFERENCE = "window:2024-06-01T00:00/2024-06-01T01:00"


def _ferry(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, server: TeamServer, role: str | None
) -> Callable[..., Any]:
    """``ferry`` in this process, as a client of ``server`` with ``role``'s token (or none)."""

    def run(*args: str) -> Any:
        monkeypatch.setenv("FERRY_TRACKING_URI", server.url)
        if role is None:
            monkeypatch.delenv("FERRY_TOKEN", raising=False)
        else:
            monkeypatch.setenv("FERRY_TOKEN", server.tokens[role])
        return cli(*args)

    return run


def _traffic(server: TeamServer, home: Path, deployment: str) -> list[str]:
    """An hour of predictions like the reference, then an hour of shifted ones, logged
    through the server as a model server logs them; their ids."""
    settings = Settings(
        home=home, store_url=server.url, artifacts_url=server.url, token=server.tokens["writer"]
    )
    rng = np.random.default_rng(7)
    ids: list[str] = []
    with PredictionLog(settings) as log:
        for hour, shift in ((0, 0.0), (1, 3.0)):
            for request in range(20):
                frame = pd.DataFrame({"a": rng.normal(size=10) + shift, "b": rng.normal(size=10)})
                batch = [f"{deployment}-{hour}-{request}-{i}" for i in range(10)]
                when = T0.timestamp() + hour * 3600 + request * 150
                log.record(deployment, "primary", "m", 1, batch, frame, [0] * 10, 1.0, when)
                ids += batch
    return ids


def test_monitors_alerts_and_feedback_work_through_the_server_for_the_roles_allowed(
    sqlite_team_server: TeamServer,
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server = sqlite_team_server
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    ids = _traffic(server, tmp_path / "home", "churn")
    anonymous, reader, writer, maintainer = (
        _ferry(cli, monkeypatch, server, role) for role in (None, "reader", "writer", "maintainer")
    )
    add = ("monitor", "add", "watch", "--deployment", "churn", "--reference", _REFERENCE)
    add += ("--window", "1h", "--rule", "drift_share > 0.3")
    code, _, err = anonymous(*add)
    assert code == 1 and err.startswith("error: No token: send 'Authorization: Bearer <token>'")
    code, _, err = writer(*add)
    assert code == 1
    assert err == "error: User 'writer' has the role writer; this needs maintainer.\n"
    assert maintainer(*add)[:2] == (
        0,
        "Monitor 'watch' added; run it with `ferry monitor run watch`.\n",
    )

    code, _, err = writer("monitor", "run", "watch")
    assert code == 1 and "this needs maintainer" in err
    code, out, err = maintainer("monitor", "run", "watch", "--json")
    assert (code, err) == (0, "")
    windows = json.loads(out)
    assert [w["metrics"]["dataset_drift"] for w in windows] == [0.0, 1.0]
    assert maintainer("monitor", "run", "watch", "--json")[1].strip() == "[]"  # checked once
    code, out, _ = maintainer("monitor", "run", "watch", "--json", "--recheck", windows[1]["start"])
    assert code == 0 and [w["start"] for w in json.loads(out)] == [windows[1]["start"]]
    code, _, err = maintainer("monitor", "run", "watch", "--recheck", "yesterday-ish")
    assert code == 2 and err.startswith("error: --recheck 'yesterday-ish' is not a time")

    code, _, err = anonymous("alerts", "list", "--monitor", "watch")
    assert code == 1 and "No token" in err
    code, out, _ = reader("alerts", "list", "--monitor", "watch", "--json")
    (alert,) = json.loads(out)
    assert (alert["state"], alert["rule"]) == ("fired", "drift_share > 0.3")
    assert [(d["channel"], d["ok"]) for d in alert["deliveries"]] == [("log", True)]

    labels = tmp_path / "labels.csv"
    pd.DataFrame({"prediction_id": ids[:30], "label": [1] * 30}).to_csv(labels, index=False)
    code, _, err = reader("feedback", "import", str(labels))
    assert code == 1
    assert err.startswith("error: User 'reader' has the role reader; this needs writer.")
    code, _, err = anonymous("feedback", "import", str(labels))
    assert code == 1 and "No token" in err
    assert writer("feedback", "import", str(labels))[:2] == (
        0,
        "30 labels imported (0 replaced an earlier label), 0 unknown prediction ids.\n",
    )
    with server.http("reader") as http:
        given = http.get("/api/v1/predictions/feedback", params={"deployment": "churn"}).json()
    assert len(given) == 30 and {f["user"] for f in given} == {"writer"}  # the token's user


_POLICY = """
policies:
  retrain-fraud:
    deployment: fraud
    mode: approval
    task: classification
    target: label
    triggers:
      - alert: fraud-watch
    retrain:
      pipeline: train.py:training
      min_rows: 5000
      max_wait: 1d
"""


def test_the_agent_decides_through_the_server_and_a_deployment_maintainer_approves(
    sqlite_team_server: TeamServer,
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server = sqlite_team_server
    (tmp_path / "ferry.yaml").write_text(_POLICY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FERRY_HOME", str(tmp_path / "home"))
    anonymous, reader, writer, maintainer, owner = (
        _ferry(cli, monkeypatch, server, role)
        for role in (None, "reader", "writer", "maintainer", "owner")
    )
    code, _, err = anonymous("agent", "--once")
    assert code == 1 and "No token" in err
    code, _, err = writer("agent", "--once")
    assert code == 1 and err == "error: User 'writer' has the role writer; this needs maintainer.\n"
    code, out, err = maintainer("agent", "--once")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].endswith("policies retrain-fraud.")  # a first pass: watermarks
    _traffic(server, tmp_path / "home", "fraud")
    add = ("monitor", "add", "fraud-watch", "--deployment", "fraud", "--reference", _REFERENCE)
    assert maintainer(*add, "--window", "1h", "--rule", "drift_share > 0.3")[0] == 0
    code, out, err = maintainer("agent", "--once")
    assert (code, err) == (0, "")
    (decision,) = json.loads(
        maintainer("decisions", "list", "--policy", "retrain-fraud", "--json")[1]
    )
    assert (decision["policy"], decision["state"]) == ("retrain-fraud", "triggered")
    # Retraining needs the data and pipeline stores; the gate's verdict stands in for it here.
    with server.http("maintainer") as http:
        moved = http.post(
            f"/api/v1/decisions/{decision['id']}/advance",
            json={
                "expected_state": "triggered",
                "state": "awaiting_approval",
                "context": decision["context"],
                "event": {"kind": "gate", "message": "gate passed"},
            },
        )
        assert moved.json() == {"moved": True}
        forged = http.post(
            f"/api/v1/decisions/{decision['id']}/advance",
            json={
                "expected_state": "awaiting_approval",
                "state": "approved",
                "context": {"approved_by": "someone else"},
                "event": {"kind": "approved", "message": "approved by someone else"},
            },
        )
        assert forged.status_code == 422 and "only by a person" in forged.text
    with server.http("admin") as admin:
        assert admin.put("/api/v1/maintainers/deployment/fraud/owner").status_code < 300

    approve = ("approve", str(decision["id"]), "--reason", "the gate passed")
    code, _, err = anonymous(*approve)
    assert code == 1 and "No token" in err
    code, _, err = reader(*approve)
    assert code == 1 and "this needs writer" in err
    code, _, err = writer(*approve)
    assert code == 1 and err == (
        "error: User 'writer' has the role writer and is not a maintainer of deployment "
        "'fraud'; this needs maintainer.\n"
    )
    code, out, err = owner(*approve)
    assert (code, err) == (0, "")
    story = json.loads(reader("decisions", "show", str(decision["id"]), "--json")[1])
    assert story["state"] == "approved"
    assert story["events"][-1]["message"] == "approved by owner: the gate passed"
    code, _, err = owner("reject", str(decision["id"]))
    assert code == 1 and f"Decision {decision['id']} is approved, not waiting" in err
