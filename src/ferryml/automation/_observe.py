"""What a decision's steps read: the deployment's labelled predictions, its serving
versions, and the canary's figures against the primary's while a rollout runs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ferryml.automation.policy import Policy
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound

__all__ = [
    "canary_gone",
    "describe_observed",
    "describe_step",
    "finite",
    "fmt",
    "labelled_rows",
    "new_version",
    "primary_version",
    "route_figures",
    "serving_versions",
    "task_metric",
    "worse_canary",
]


def labelled_rows(settings: Settings, policy: Policy, since_ms: int | None) -> pd.DataFrame:
    """The deployment's newest labelled predictions (made since ``since_ms``), oldest
    first, as training rows: the model's input columns and the label under the policy's
    target name."""
    from ferryml.serving import predictions

    if policy.retrain.feedback == 0:
        return pd.DataFrame()
    start = None if since_ms is None else pd.Timestamp(since_ms, unit="ms", tz="UTC")
    try:
        frame = predictions.load(
            policy.deployment,
            since=None if start is None else start.to_pydatetime(),
            with_feedback=True,
            settings=settings,
        )
    except NotFound:
        return pd.DataFrame()
    if frame.empty or "label" not in frame.columns:
        return pd.DataFrame()
    frame = frame[frame["label"].notna()].tail(policy.retrain.feedback)
    from ferryml.monitoring.monitors import NOT_FEATURES

    features = [c for c in frame.columns if c not in NOT_FEATURES and c != "prediction"]
    out = frame[features].copy()
    out[policy.target] = frame["label"].to_numpy()
    return out.reset_index(drop=True)


def serving_versions(settings: Settings, policy: Policy) -> tuple[str, int]:
    from ferryml.serving.deployments import Deployments

    manager = Deployments(settings)
    try:
        spec = manager.get(policy.deployment)
    finally:
        manager.close()
    primary = spec.route("primary")
    assert primary is not None
    return spec.model, primary.version


def new_version(settings: Settings, model: str, since_ms: int) -> int | None:
    """The newest version of ``model`` registered since the decision began (a pipeline
    killed after registering, then re-run from its cache, registers nothing new)."""
    from ferryml.registry.models import Registry

    registry = Registry(settings)
    try:
        found = [
            v.version
            for v in registry.store.list_model_versions(model)
            if v.creation_time >= since_ms
        ]
    finally:
        registry.close()
    return max(found) if found else None


def route_figures(
    settings: Settings, policy: Policy, since: int, context: dict[str, Any]
) -> dict[str, Any]:
    """Requests and, on labelled rows, the task's metric of the canary and the primary
    since the step began."""
    from ferryml.monitoring.performance import performance
    from ferryml.serving import predictions

    try:
        frame = predictions.load(
            policy.deployment,
            since=pd.Timestamp(since, unit="ms", tz="UTC").to_pydatetime(),
            with_feedback=True,
            settings=settings,
        )
    except NotFound:
        frame = pd.DataFrame()
    candidate = int(context["candidate"])
    seen: dict[str, Any] = {"canary_requests": 0, "primary_requests": 0}
    if frame.empty:
        return seen
    is_canary = frame["version"].astype(int) == candidate
    seen["canary_requests"] = int(is_canary.sum())
    seen["primary_requests"] = int((~is_canary).sum())
    metric = task_metric(policy)
    for role, rows in (("canary", frame[is_canary]), ("primary", frame[~is_canary])):
        labelled = rows[rows["label"].notna()] if "label" in rows.columns else rows.iloc[:0]
        seen[f"{role}_labelled"] = len(labelled)
        if len(labelled):
            perf = performance(labelled, task=policy.task, by=None, group_by=())  # type: ignore[arg-type]
            seen[f"{role}_{metric}"] = finite(float(perf.iloc[0][metric]))
    return seen


def task_metric(policy: Policy) -> str:
    return "accuracy" if policy.task == "classification" else "rmse"


def worse_canary(policy: Policy, seen: dict[str, Any]) -> str | None:
    metric = task_metric(policy)
    canary, primary = seen.get(f"canary_{metric}"), seen.get(f"primary_{metric}")
    enough = min(seen.get("canary_labelled", 0), seen.get("primary_labelled", 0))
    if canary is None or primary is None or enough < policy.rollout.min_labelled:
        return None
    drop = (primary - canary) if metric == "accuracy" else (canary - primary)
    if drop > policy.rollout.max_drop:
        return (
            f"the canary's {metric} {canary:.3f} is worse than the primary's {primary:.3f} by "
            f"more than {policy.rollout.max_drop:g} on {enough}+ labelled requests"
        )
    return None


def primary_version(spec: Any) -> int:
    primary = spec.route("primary")
    if primary is None:  # Deployments keeps exactly one; a hand-edited store might not
        raise InvalidArgument("The deployment has no primary route; fix it with `ferry deploy`.")
    return int(primary.version)


def canary_gone(
    manager: Any, spec: Any, deployment: str, context: dict[str, Any], since: int
) -> str | None:
    """Why the decision's canary no longer takes traffic, or None while it does."""
    canary = spec.route("canary")
    if canary is not None and canary.version == context["candidate"] and canary.weight > 0:
        return None
    for event in reversed(manager.history(deployment)):
        if event.action in ("auto_rollback", "rollback") and event.time >= since:
            return f"the canary was rolled back ({event.user}): {event.reason}"
    if canary is not None and canary.version != context["candidate"]:
        return f"another canary (v{canary.version}) replaced it"
    return "the canary route was removed"


def describe_step(step: Any) -> str:
    parts = [f"{step.requests} requests"] if step.requests else []
    if step.minutes:
        parts.append(f"{step.minutes:g} minutes")
    return " and ".join(parts)


def describe_observed(seen: dict[str, Any]) -> str:
    parts = [f"{seen.get('canary_requests', 0)} canary requests"]
    for key in ("canary_accuracy", "primary_accuracy", "canary_rmse", "primary_rmse"):
        if seen.get(key) is not None:
            parts.append(f"{key.replace('_', ' ')} {seen[key]:.3f}")
    return ", ".join(parts)


def finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
