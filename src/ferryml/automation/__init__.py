"""Automation: retraining policies, the decisions they take and the agent that runs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_POLICY = "ferryml.automation.policy"
_API = "ferryml.automation.api"
_EXPORTS = {
    "Agent": "ferryml.automation.agent",
    "Policy": _POLICY,
    "Retrain": _POLICY,
    "Rollout": _POLICY,
    "RolloutStep": _POLICY,
    "Trigger": _POLICY,
    "load_policies": _POLICY,
    "approve": _API,
    "decision_story": _API,
    "list_decisions": _API,
    "reject": _API,
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.automation.agent import Agent
    from ferryml.automation.api import approve, decision_story, list_decisions, reject
    from ferryml.automation.policy import (
        Policy,
        Retrain,
        Rollout,
        RolloutStep,
        Trigger,
        load_policies,
    )
