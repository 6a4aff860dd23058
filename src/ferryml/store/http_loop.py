"""The closed loop's stores over HTTP (``ferryml.store.loop``'s interfaces), answered by a
team server: monitors, alerts, predictions and feedback, policies and decisions.

Who approves a decision or gives feedback is the server's to say (its token's user): the
``user`` these methods take is not sent.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ferryml.errors import Conflict
from ferryml.store.http import _as, _Part
from ferryml.store.loop import (
    Alert,
    AlertState,
    DecisionEvent,
    DecisionRecord,
    Delivery,
    Event,
    Feedback,
    MonitorResult,
    PredictionPartition,
    Step,
)
from ferryml.store.request_errors import RequestErrorCount, RequestErrors
from ferryml.store.review import ReviewItem, ReviewQueue

__all__ = [
    "HttpAlertStore",
    "HttpAutomationStore",
    "HttpMonitorStore",
    "HttpPredictionStore",
    "HttpRequestErrorStore",
    "HttpReviewStore",
]

_CHUNK = 10_000  # feedback rows a request, far below the server's body limit
_ITEMS = 1000  # review items a request
_TRIES = 20  # alert transitions retried when another writer moved the state first


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class HttpMonitorStore(_Part):
    """``MonitorStore`` over a team server: changes need a maintainer."""

    def create(self, name: str, spec: dict[str, Any]) -> None:
        self.client.call("PUT", f"/api/v1/monitors/{name}", {"spec": spec})

    def remove(self, name: str) -> int:
        return int(self.client.call("DELETE", f"/api/v1/monitors/{name}")["windows"])

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.client.call("GET", f"/api/v1/monitors/{name}")["spec"])

    def list_monitors(self) -> list[tuple[str, dict[str, Any]]]:
        return [(m["name"], m["spec"]) for m in self.client.call("GET", "/api/v1/monitors")]

    def last_window(self, name: str) -> tuple[int, int] | None:
        found = self.client.call("GET", f"/api/v1/monitors/{name}/windows/last")
        return None if found is None else (found["window_start"], found["window_end"])

    def add_result(
        self,
        name: str,
        window_start: int,
        window_end: int,
        metrics: dict[str, float],
        drift: dict[str, Any],
    ) -> bool:
        body = {
            "window_start": window_start,
            "window_end": window_end,
            "metrics": metrics,
            "drift": drift,
        }
        return bool(self.client.call("POST", f"/api/v1/monitors/{name}/windows", body)["stored"])

    def list_results(self, name: str, *, ended_after: int | None = None) -> list[MonitorResult]:
        found = self.client.call(
            "GET", f"/api/v1/monitors/{name}/windows", params=_query(ended_after=ended_after)
        )
        return _as(list[MonitorResult], found)

    def remove_results(self, name: str, *, ended_after: int) -> int:
        path, query = f"/api/v1/monitors/{name}/windows", _query(ended_after=ended_after)
        return int(self.client.call("DELETE", path, params=query)["windows"])


class HttpAlertStore(_Part):
    """``AlertStore`` over a team server: recording needs a maintainer (as running a
    monitor does); a transition is a compare-and-set, retried when it lost a race."""

    def transition(self, monitor: str, rule: str, step: Step) -> Alert | None:
        for _ in range(_TRIES):
            current = self.get_state(monitor, rule)
            state, alert = step(current)
            if state == current and alert is None:
                return None
            body = {
                "expected": dataclasses.asdict(current),
                "state": dataclasses.asdict(state),
                "alert": None if alert is None else dataclasses.asdict(alert),
            }
            try:
                found = self.client.call("POST", "/api/v1/alerts/transitions", body)
            except Conflict:
                continue  # another monitor run moved the state: step again from there
            return None if found["alert"] is None else _as(Alert, found["alert"])
        raise Conflict(
            f"The state of rule {rule!r} of monitor {monitor!r} kept changing under "
            f"{_TRIES} tries; is another process running the monitor? Run it again."
        )

    def get_state(self, monitor: str, rule: str) -> AlertState:
        found = self.client.call(
            "GET", "/api/v1/alerts/state", params={"monitor": monitor, "rule": rule}
        )
        return _as(AlertState, found)

    def record_delivery(self, alert_id: int, delivery: Delivery) -> None:
        path = f"/api/v1/alerts/{alert_id}/deliveries"
        self.client.call("POST", path, dataclasses.asdict(delivery))

    def get_alert(self, alert_id: int) -> Alert:
        return _as(Alert, self.client.call("GET", f"/api/v1/alerts/{alert_id}"))

    def list_alerts(
        self, *, monitor: str | None = None, rule: str | None = None, limit: int = 100
    ) -> list[Alert]:
        params = _query(monitor=monitor, rule=rule, limit=limit)
        return _as(list[Alert], self.client.call("GET", "/api/v1/alerts", params=params))


class HttpPredictionStore(_Part):
    """``PredictionStore`` over a team server: indexing partitions and giving feedback
    need a writer."""

    def create_partitions(self, partitions: Sequence[PredictionPartition]) -> None:
        if partitions:
            body = {"partitions": [dataclasses.asdict(p) for p in partitions]}
            self.client.call("POST", "/api/v1/predictions/partitions", body)

    def list_partitions(
        self, deployment: str, *, since: int | None = None, until: int | None = None
    ) -> list[PredictionPartition]:
        params = _query(deployment=deployment, since=since, until=until)
        found = self.client.call("GET", "/api/v1/predictions/partitions", params=params)
        return _as(list[PredictionPartition], found)

    def list_deployments(self) -> list[str]:
        return list(self.client.call("GET", "/api/v1/predictions/deployments"))

    def search_partitions_by_id(self, lowest: str, highest: str) -> list[PredictionPartition]:
        params = {"lowest": lowest, "highest": highest}
        found = self.client.call("GET", "/api/v1/predictions/partitions/by-id", params=params)
        return _as(list[PredictionPartition], found)

    def replace_partitions(self, old: Sequence[str], new: Sequence[PredictionPartition]) -> bool:
        body = {"old": list(old), "new": [dataclasses.asdict(p) for p in new]}
        return bool(self.client.call("POST", "/api/v1/predictions/partitions/replace", body))

    def upsert_feedback(self, rows: Sequence[Feedback], *, user: str) -> set[str]:
        replaced: set[str] = set()
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            body = {"rows": [_feedback_row(r) for r in chunk]}
            replaced.update(self.client.call("POST", "/api/v1/predictions/feedback", body))
        return replaced

    def list_feedback(
        self,
        deployment: str,
        *,
        since: int | None = None,
        until: int | None = None,
        recorded_after: int | None = None,
    ) -> list[Feedback]:
        params = _query(
            deployment=deployment, since=since, until=until, recorded_after=recorded_after
        )
        found = self.client.call("GET", "/api/v1/predictions/feedback", params=params)
        return _as(list[Feedback], found)


class HttpRequestErrorStore(_Part):
    """``RequestErrorStore`` over a team server: storing counts needs a writer."""

    def create_request_errors(self, rows: Sequence[RequestErrors]) -> None:
        for start in range(0, len(rows), _CHUNK):
            body = {"rows": [dataclasses.asdict(r) for r in rows[start : start + _CHUNK]]}
            self.client.call("POST", "/api/v1/predictions/errors", body)

    def count_request_errors(
        self, deployment: str, *, since: int, until: int, width_ms: int
    ) -> list[RequestErrorCount]:
        params = _query(deployment=deployment, since=since, until=until, width_ms=width_ms)
        found = self.client.call("GET", "/api/v1/predictions/errors/counts", params=params)
        return _as(list[RequestErrorCount], found)

    def latest_request_errors(
        self, deployment: str, *, since: int, limit: int = 100, route: str | None = None
    ) -> list[RequestErrors]:
        params = _query(deployment=deployment, since=since, limit=limit, route=route)
        found = self.client.call("GET", "/api/v1/predictions/errors/latest", params=params)
        return _as(list[RequestErrors], found)


def _feedback_row(row: Feedback) -> dict[str, Any]:
    fields = dataclasses.asdict(row)
    del fields["user"]  # the server records its token's user
    return fields


class HttpAutomationStore(_Part):
    """``AutomationStore`` over a team server: the agent's writes need a maintainer;
    approving or rejecting a decision, a maintainer or one its deployment names."""

    # -- decisions -------------------------------------------------------------------------

    def create_decision(
        self, policy: str, deployment: str, state: str, context: Mapping[str, Any], event: Event
    ) -> int:
        body = {
            "policy": policy,
            "deployment": deployment,
            "state": state,
            "context": _plain(context),
            "event": _event(event),
        }
        return int(self.client.call("POST", "/api/v1/decisions", body)["id"])

    def advance(
        self,
        decision_id: int,
        expected_state: str,
        state: str,
        context: Mapping[str, Any],
        event: Event,
        *,
        outcome: str | None = None,
        expected_updated: int | None = None,
    ) -> bool:
        body = {
            "expected_state": expected_state,
            "expected_updated": expected_updated,
            "state": state,
            "outcome": outcome,
            "context": _plain(context),
            "event": _event(event),
        }
        path = f"/api/v1/decisions/{decision_id}/advance"
        return bool(self.client.call("POST", path, body)["moved"])

    def get_decision(self, decision_id: int) -> DecisionRecord:
        return _as(DecisionRecord, self.client.call("GET", f"/api/v1/decisions/{decision_id}"))

    def list_decisions(
        self, *, policy: str | None = None, open_only: bool = False, limit: int | None = None
    ) -> list[DecisionRecord]:
        params = _query(policy=policy, open_only=open_only, limit=limit)
        found = self.client.call("GET", "/api/v1/decisions", params=params)
        return _as(list[DecisionRecord], found)

    def count_since(self, policy: str, since_ms: int) -> int:
        params = {"policy": policy, "since": since_ms}
        return int(self.client.call("GET", "/api/v1/decisions/count", params=params)["count"])

    def events(self, decision_id: int) -> list[DecisionEvent]:
        found = self.client.call("GET", f"/api/v1/decisions/{decision_id}/events")
        return _as(list[DecisionEvent], found)

    def approve(self, decision_id: int, *, user: str, reason: str = "") -> DecisionRecord:
        path = f"/api/v1/decisions/{decision_id}/approve"
        return _as(DecisionRecord, self.client.call("POST", path, {"reason": reason}))

    def reject(self, decision_id: int, *, user: str, reason: str = "") -> DecisionRecord:
        path = f"/api/v1/decisions/{decision_id}/reject"
        return _as(DecisionRecord, self.client.call("POST", path, {"reason": reason}))

    # -- policies and the lease --------------------------------------------------------------

    def policy_state(self, policy: str) -> dict[str, Any]:
        return dict(self.client.call("GET", f"/api/v1/policies/{policy}/state"))

    def set_policy_state(self, policy: str, state: Mapping[str, Any]) -> None:
        self.client.call("PUT", f"/api/v1/policies/{policy}/state", {"state": _plain(state)})

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        body = {"holder": holder, "seconds": seconds}
        return bool(self.client.call("POST", f"/api/v1/leases/{name}", body)["held"])

    def release_lease(self, name: str, holder: str) -> None:
        self.client.call("DELETE", f"/api/v1/leases/{name}", params={"holder": holder})

    def lease_holder(self, name: str) -> tuple[str, int] | None:
        found = self.client.call("GET", f"/api/v1/leases/{name}")
        return None if found is None else (found["holder"], found["expires"])


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """As the SQL store keeps it: JSON, with what JSON lacks spelled as text."""
    plain: dict[str, Any] = json.loads(json.dumps(dict(value), default=str))
    return plain


def _event(event: Event) -> dict[str, Any]:
    kind, message, details = event
    return {"kind": kind, "message": message, "details": _plain(details)}


class HttpReviewStore(_Part):
    """``ReviewStore`` over a team server: setting a queue up needs a maintainer of the
    deployment; adding, labelling and skipping items a writer, recorded as the token's
    user."""

    def set_queue(self, queue: ReviewQueue, *, user: str) -> ReviewQueue:
        found = self.client.call("PUT", _review(queue.deployment), queue.spec())
        return _as(ReviewQueue, found)

    def get_queue(self, deployment: str) -> ReviewQueue:
        return _as(ReviewQueue, self.client.call("GET", _review(deployment)))

    def list_queues(self) -> list[ReviewQueue]:
        return _as(list[ReviewQueue], self.client.call("GET", "/api/v1/review"))

    def add_items(self, items: Sequence[ReviewItem]) -> int:
        added = 0
        for deployment in dict.fromkeys(i.deployment for i in items):
            mine = [_review_row(i) for i in items if i.deployment == deployment]
            for start in range(0, len(mine), _ITEMS):
                body = {"items": mine[start : start + _ITEMS]}
                path = f"{_review(deployment)}/items"
                added += int(self.client.call("POST", path, body)["added"])
        return added

    def list_items(
        self, deployment: str, *, state: str | None = "open", limit: int = 100
    ) -> list[ReviewItem]:
        params = _query(state=state or "any", limit=limit)
        found = self.client.call("GET", f"{_review(deployment)}/items", params=params)
        return _as(list[ReviewItem], found)

    def queued_ids(self, deployment: str, since: int) -> set[str]:
        path = f"{_review(deployment)}/queued-ids"
        return set(self.client.call("GET", path, params={"since": since}))

    def label(self, deployment: str, prediction_id: str, label: str, *, user: str) -> ReviewItem:
        path = f"{_review(deployment)}/items/{quote(prediction_id, safe='')}/label"
        found = self.client.call("POST", path, {"label": json.loads(label)})
        return _as(ReviewItem, found)

    def skip(self, deployment: str, prediction_id: str, *, user: str) -> ReviewItem:
        path = f"{_review(deployment)}/items/{quote(prediction_id, safe='')}/skip"
        return _as(ReviewItem, self.client.call("POST", path, {}))


def _review(deployment: str) -> str:
    return f"/api/v1/review/{quote(deployment, safe='')}"


def _review_row(item: ReviewItem) -> dict[str, Any]:
    fields = dataclasses.asdict(item)
    for server_side in ("state", "label", "user", "resolved"):
        del fields[server_side]
    return fields
