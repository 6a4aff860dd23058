"""Decisions for people and scripts: list them, tell one's story, approve or reject one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ferryml._identity import current_user
from ferryml.automation import decisions
from ferryml.config import Settings
from ferryml.store.factory import open_sql_part
from ferryml.store.sql_automation import DecisionRecord, SqlAutomationStore

__all__ = ["approve", "decision_story", "list_decisions", "reject"]


@contextmanager
def _store(settings: Settings) -> Iterator[SqlAutomationStore]:

    store = open_sql_part(settings, SqlAutomationStore)
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


def approve(settings: Settings, decision_id: int, reason: str = "") -> None:
    """Let a decision that waits for approval roll out its candidate.

    Raises:
        NotFound: no such decision.
        Conflict: it is not waiting for approval.
    """
    with _store(settings) as store:
        decisions.approve(store, decision_id, current_user(), reason)


def reject(settings: Settings, decision_id: int, reason: str = "") -> None:
    """End a decision that waits for approval; the champion keeps serving.

    Raises:
        NotFound: no such decision.
        Conflict: it is not waiting for approval.
    """
    with _store(settings) as store:
        decisions.reject(store, decision_id, current_user(), reason)
