"""Decisions for people and scripts: list them, tell one's story, approve or reject one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ferryml._identity import current_user
from ferryml.config import Settings
from ferryml.store.factory import open_automation_store
from ferryml.store.loop import AutomationStore, DecisionRecord

__all__ = ["approve", "decision_story", "list_decisions", "reject"]


@contextmanager
def _store(settings: Settings) -> Iterator[AutomationStore]:
    store = open_automation_store(settings)
    try:
        yield store
    finally:
        store.close()


def list_decisions(
    settings: Settings, *, policy: str | None = None, open_only: bool = False, limit: int = 50
) -> list[DecisionRecord]:
    """Decisions, newest first."""
    with _store(settings) as store:
        return store.list_decisions(policy=policy, open_only=open_only, limit=limit)


def decision_story(settings: Settings, decision_id: int) -> dict[str, Any]:
    """A decision and every step of it, oldest first, with what each step touched: the
    pipeline run, the model versions, the monitor window that triggered it.

    Raises:
        NotFound: no such decision.
    """
    with _store(settings) as store:
        record = store.get_decision(decision_id)
        events = store.events(decision_id)
    context = record.context
    links: dict[str, Any] = {}
    if run := context.get("pipeline_run"):
        links["pipeline_run"] = {"id": run, "see": f"ferry runs show {run}"}
    model = context.get("model")
    for role in ("champion", "candidate"):
        if model and context.get(role) is not None:
            ref = f"{model}/{context[role]}"
            links[role] = {"version": ref, "see": f"ferry models show {ref}"}
    if data := context.get("data"):
        links["data"] = {"version": data, "see": f"ferry data log {data.partition('@')[0]}"}
    evidence = context.get("evidence", {})
    if monitor := evidence.get("monitor"):
        links["monitor_window"] = {
            "monitor": monitor,
            "window_start": evidence.get("window_start"),
            "window_end": evidence.get("window_end"),
            "see": f"ferry monitor report {monitor}",
        }
    return {
        "id": record.id,
        "policy": record.policy,
        "deployment": record.deployment,
        "state": record.state,
        "outcome": record.outcome,
        "created": record.created,
        "updated": record.updated,
        "trigger": context.get("trigger"),
        "links": links,
        "events": [
            {
                "seq": e.seq,
                "time": e.time,
                "kind": e.kind,
                "message": e.message,
                "details": e.details,
            }
            for e in events
        ],  # fmt: skip
    }


def approve(settings: Settings, decision_id: int, reason: str = "") -> DecisionRecord:
    """Let a decision that waits for approval roll out its candidate; the decision as it
    is now. Through a team server, the token's user approves (a maintainer, or one the
    deployment names).

    Raises:
        NotFound: no such decision.
        Conflict: it is not waiting for approval.
        PermissionDenied: through a team server, the token's user may not.
    """
    with _store(settings) as store:
        return store.approve(decision_id, user=current_user(), reason=reason)


def reject(settings: Settings, decision_id: int, reason: str = "") -> DecisionRecord:
    """End a decision that waits for approval; the champion keeps serving.

    Raises:
        NotFound: no such decision.
        Conflict: it is not waiting for approval.
        PermissionDenied: through a team server, the token's user may not.
    """
    with _store(settings) as store:
        return store.reject(decision_id, user=current_user(), reason=reason)
