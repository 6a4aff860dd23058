"""Decisions: a policy's answer to one trigger, carried step by step to an outcome.

A decision moves through these states, each step recorded as one event of its audit trail:

    triggered ─► data_ready ─► trained ─► gated ─┬─► rolling_out ─► done (promoted)
                                                 └─► awaiting_approval ─► rolling_out
    any step ─► done (failed | rejected | rolled_back | abandoned)

Every step is an action followed by one atomic write of the new state (and what the action
produced) with its event, conditioned on the state it started from. An agent killed between
the action and the write repeats the action when it starts again, so each action is made
safe to repeat: a data version of the same rows, a pipeline whose steps come from the cache,
a gate that only evaluates, a canary weight set to the step's value, a promotion that checks
whether it happened. The champion keeps serving until the last step promotes the candidate.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.exc import OperationalError

from ferryml.automation import _observe as see
from ferryml.automation.policy import Policy
from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument, StoreUnavailable
from ferryml.store.loop import DecisionRecord, DecisionStore

__all__ = ["OUTCOMES", "advance", "take_down"]

log = logging.getLogger("ferryml.agent")
OUTCOMES = ("promoted", "failed", "rejected", "rolled_back", "abandoned")
MIN_HOLDOUT = 20


@dataclass
class Step:
    """What ``advance`` did: the state it reached, the event kind and message."""

    state: str
    kind: str
    message: str
    outcome: str | None = None


def advance(
    store: DecisionStore,
    settings: Settings,
    policy: Policy,
    decision: DecisionRecord,
    *,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Take the decision's next step if it can be taken now; False when it waits (for
    requests, for labels, for a person) or is over. ``clock`` gives the time in seconds,
    as ``time.time`` does; waits (for labels, for a timed canary step) are measured on it."""
    handler = _HANDLERS.get(decision.state)
    if handler is None or decision.outcome is not None:
        return False
    context = {**decision.context, "decision": decision.id}
    try:
        step = handler(settings, policy, decision, context, int(clock() * 1000))
    except (StoreUnavailable, OperationalError):
        raise  # the store is away: the step is taken again next pass
    except FerryError as e:
        step = _fail(settings, policy, decision.state, context, str(e))
    except Exception as e:  # noqa: BLE001 - a user's pipeline may raise anything
        step = _fail(settings, policy, decision.state, context, f"{type(e).__name__}: {e}")
    if step is None:
        return False
    details = {k: context[k] for k in _DETAILS.get(step.kind, ()) if k in context}
    moved = store.advance(
        decision.id,
        decision.state,
        step.state,
        context,
        (step.kind, step.message, details),
        outcome=step.outcome,
        expected_updated=decision.updated,
    )
    if moved:
        log.info("decision %s (%s): %s", decision.id, policy.name, step.message)
    return moved


# -- the steps ----------------------------------------------------------------------------


def _prepare_data(
    settings: Settings,
    policy: Policy,
    decision: DecisionRecord,
    context: dict[str, Any],
    now: int,
) -> Step | None:
    """The newest data version plus the freshest labelled predictions, as a new data
    version; the newest share of those labels kept out for the gate. Waits while fewer
    than ``min_rows`` fresh labels exist."""
    from ferryml.data.workspace import Workspace

    retrain = policy.retrain
    since = None
    if retrain.feedback_since == "trigger":
        since = context.get("evidence", {}).get("window_start", context["started"])
    fresh = see.labelled_rows(settings, policy, since)
    if len(fresh) < retrain.min_rows:
        if now - context["started"] <= retrain.max_wait_s * 1000:
            return None
        return Step(
            "done",
            "abandoned",
            f"abandoned: {len(fresh)} of the {retrain.min_rows} fresh labels needed arrived in "
            f"{retrain.max_wait_s / 3600:g} h; the champion keeps serving",
            "abandoned",
        )
    workspace = Workspace(settings)
    try:
        base = None
        if retrain.data is not None:
            loaded = workspace.load(retrain.data)
            if not isinstance(loaded, pd.DataFrame):
                raise InvalidArgument(
                    f"Data {retrain.data!r} is files, not a table; retraining takes a table."
                )
            base = loaded
            fresh = fresh[[c for c in base.columns if c in fresh.columns]]
        cut = len(fresh) - int(round(len(fresh) * retrain.holdout))
        train_fresh, holdout = fresh.iloc[:cut], fresh.iloc[cut:]
        frames = [f for f in (base, train_fresh) if f is not None and len(f)]
        if not frames:
            raise InvalidArgument(
                "There is nothing to train on: the policy names no data and the deployment "
                "has no labelled predictions yet."
            )
        training = pd.concat(frames, ignore_index=True)
        if len(holdout) < MIN_HOLDOUT:  # too few fresh labels: gate on part of the data
            holdout = training.sample(frac=max(retrain.holdout, 0.2), random_state=decision.id)
            training = training.drop(index=holdout.index)
        # the policy's own dataset: the user's keeps only what the user added
        version = workspace.add_frame(training.reset_index(drop=True), f"{policy.name}-training")
        buffer = io.BytesIO()
        holdout.reset_index(drop=True).to_parquet(buffer, index=False)
        context["holdout"] = workspace.artifacts.put_bytes(buffer.getvalue()).digest
    finally:
        workspace.close()
    context["data"] = f"{version.name}@{version.version}"
    context["rows"] = {
        "training": len(training),
        "fresh": len(train_fresh),
        "holdout": len(holdout),
    }
    return Step(
        "data_ready",
        "data",
        f"versioned {context['data']}: {len(training)} rows ({len(train_fresh)} fresh labelled "
        f"predictions); {len(holdout)} rows kept out for the gate",
    )


def _train(
    settings: Settings,
    policy: Policy,
    decision: DecisionRecord,
    context: dict[str, Any],
    now: int,
) -> Step:
    from ferryml.pipelines import run_target

    root = str(settings.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    params = {**policy.retrain.params, policy.retrain.data_param: context["data"]}
    address = policy.retrain.address
    if policy.retrain.executor == "dask" and address is None:  # the project's cluster, if any
        from ferryml.config import read_config

        section = read_config(settings.root).dask
        address = None if section is None else section.address
    result = run_target(
        policy.retrain.pipeline,
        params,
        settings=settings,
        executor=policy.retrain.executor,
        address=address,
    )
    context["pipeline_run"] = result.run_id
    if result.status != "FINISHED":
        failed = ", ".join(result.failed) or "?"
        errors = [s.error for s in result.steps.values() if s.status == "FAILED" and s.error]
        last_line = errors[0].strip().splitlines()[-1] if errors else ""
        return _fail(
            settings,
            policy,
            decision.state,
            context,
            f"pipeline {policy.retrain.pipeline} run {result.run_id} {result.status} "
            f"(failed steps: {failed}{': ' + last_line if last_line else ''}); the champion "
            "keeps serving",
        )
    model, champion = see.serving_versions(settings, policy)
    candidate = see.new_version(settings, model, decision.created)
    if candidate is None:
        cached = bool(result.steps) and all(s.cache == "hit" for s in result.steps.values())
        why = (
            f"pipeline run {result.run_id} took every step from the cache: its data is what an "
            "earlier run trained on, so there is nothing new to train on"
            if cached
            else f"pipeline run {result.run_id} registered no new version of model {model!r}; "
            f"log the model with registered_model_name={model!r}"
        )
        return _fail(settings, policy, decision.state, context, why)
    context |= {"model": model, "candidate": candidate, "champion": champion}
    return Step(
        "trained",
        "trained",
        f"pipeline run {result.run_id} trained {model}/{candidate} (champion {model}/{champion})",
    )


def _gate(
    settings: Settings,
    policy: Policy,
    decision: DecisionRecord,
    context: dict[str, Any],
    now: int,
) -> Step:
    from ferryml.registry.gates import promote
    from ferryml.registry.models import Registry

    registry = Registry(settings)
    try:
        holdout = pd.read_parquet(io.BytesIO(registry.artifacts.get_bytes(context["holdout"])))
        result = promote(
            registry,
            context["model"],
            context["candidate"],
            alias="champion",
            data=holdout,
            target=policy.target,
            task=policy.task,
            gate=policy.gate,
            move=False,
        )
    finally:
        registry.close()
    metric = policy.gate.metric
    context["gate"] = {
        "passed": result.passed,
        "metric": metric,
        "candidate": see.finite(result.candidate_metrics.get(metric)),
        "champion": see.finite(result.champion_metrics.get(metric)),
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in result.checks],
    }
    summary = (
        f"{metric} {see.fmt(context['gate']['candidate'])} vs champion "
        f"{see.fmt(context['gate']['champion'])} on {len(holdout)} held-out rows"
    )
    if not result.passed:
        failed = "; ".join(c.detail for c in result.checks if not c.passed)
        return Step(
            "done", "gate", f"gate rejected the candidate: {failed} ({summary})", "rejected"
        )
    if policy.mode == "approval":
        return Step(
            "awaiting_approval",
            "gate",
            f"gate passed: {summary}; waiting for `ferry approve {decision.id}`",
        )
    return Step("gated", "gate", f"gate passed: {summary}")


def _start_rollout(
    settings: Settings,
    policy: Policy,
    decision: DecisionRecord,
    context: dict[str, Any],
    now: int,
) -> Step:
    return _set_step(settings, policy, context, 0, now)


def _roll_out(
    settings: Settings,
    policy: Policy,
    decision: DecisionRecord,
    context: dict[str, Any],
    now: int,
) -> Step | None:
    """Judge the current canary step: roll back on a worse canary, wait for its requests,
    then take the next step or promote."""
    from ferryml.serving.deployments import Deployments

    index = int(context["step"])
    step = policy.rollout.steps[index]
    since = int(context["step_started"])
    manager = Deployments(settings)
    try:
        spec = manager.get(policy.deployment)
        if see.primary_version(spec) == int(context["candidate"]):  # promoted, then killed
            return _promote(settings, policy, context, context.get("observed", {}))
        if why := see.canary_gone(manager, spec, policy.deployment, context, since):
            return _undo(settings, policy, context, why)
    finally:
        manager.close()
    seen = see.route_figures(settings, policy, since, context)
    context["observed"] = seen
    worse = see.worse_canary(policy, seen)
    if worse is not None:
        return _undo(settings, policy, context, worse)
    elapsed = now - since
    if seen["canary_requests"] < step.requests or elapsed < step.minutes * 60_000:
        if elapsed > policy.rollout.minutes * 60_000:
            return _undo(
                settings,
                policy,
                context,
                f"the canary got {seen['canary_requests']} of {step.requests} requests in "
                f"{policy.rollout.minutes:g} minutes",
            )
        return None
    if index + 1 < len(policy.rollout.steps):
        return _set_step(settings, policy, context, index + 1, now, seen)
    if seen.get("canary_labelled", 0) < policy.rollout.min_labelled:
        return None  # the last step also waits for labels to judge the canary on
    return _promote(settings, policy, context, seen)


def _set_step(
    settings: Settings,
    policy: Policy,
    context: dict[str, Any],
    index: int,
    now: int,
    seen: dict[str, Any] | None = None,
) -> Step:
    from ferryml.serving.deployments import Deployments

    step = policy.rollout.steps[index]
    candidate = int(context["candidate"])
    reason = f"decision {context['decision']}: canary step {index + 1}"
    manager = Deployments(settings)
    try:
        spec = manager.get(policy.deployment)
        canary = spec.route("canary")
        if index > 0 and (why := see.canary_gone(manager, spec, policy.deployment, context,
                                               int(context["step_started"]))):  # fmt: skip
            return _undo(settings, policy, context, why)
        if canary is None or canary.version != candidate:
            manager.add_route(
                policy.deployment, candidate, role="canary", weight=step.weight, reason=reason
            )
        manager.set_weights(
            policy.deployment,
            {f"v{candidate}": step.weight, f"v{see.primary_version(spec)}": 100.0 - step.weight},
            reason=reason,
        )
    finally:
        manager.close()
    context["step"], context["step_started"] = index, now
    after = "" if seen is None else f" after {see.describe_observed(seen)}"
    return Step(
        "rolling_out",
        "rollout",
        f"canary step {index + 1}/{len(policy.rollout.steps)}: {step.weight:g}% of the traffic "
        f"to v{candidate} for {see.describe_step(step)}{after}",
    )


def _promote(
    settings: Settings, policy: Policy, context: dict[str, Any], seen: dict[str, Any]
) -> Step:
    from ferryml.registry.models import Registry
    from ferryml.serving.deployments import Deployments

    candidate, model = int(context["candidate"]), context["model"]
    reason = f"decision {context['decision']}: canary healthy after {see.describe_observed(seen)}"
    if not seen:
        reason = f"decision {context['decision']}: finishing a promotion begun before a restart"
    manager = Deployments(settings)
    try:
        if see.primary_version(manager.get(policy.deployment)) != candidate:  # not promoted yet
            manager.promote(policy.deployment, reason=reason)
    finally:
        manager.close()
    registry = Registry(settings)
    try:
        registry.store.set_alias(
            model,
            "champion",
            candidate,
            user="ferryml-agent",
            reason=reason,
            evidence={"decision": context["decision"], "gate": context.get("gate"), **seen},
            action="promote",
        )
    finally:
        registry.close()
    return Step(
        "done",
        "promoted",
        f"promoted {model}/{candidate}: it serves all traffic of {policy.deployment} and "
        "holds the champion alias",
        "promoted",
    )


def take_down(settings: Settings, deployment: str, candidate: Any, reason: str) -> None:
    """Roll back the deployment's canary if it is ``candidate`` and still takes traffic;
    another canary (someone else's) is left alone."""
    from ferryml.serving.deployments import Deployments

    manager = Deployments(settings)
    try:
        canary = manager.get(deployment).route("canary")
        if canary is not None and canary.version == candidate and canary.weight > 0:
            manager.rollback(deployment, reason=reason)
    finally:
        manager.close()


def _undo(settings: Settings, policy: Policy, context: dict[str, Any], why: str) -> Step:
    candidate = context.get("candidate")
    take_down(settings, policy.deployment, candidate, f"decision {context['decision']}: {why}")
    return Step(
        "done",
        "rolled_back",
        f"rolled back: {why}; v{context.get('champion')} serves all traffic",
        "rolled_back",
    )


def _fail(
    settings: Settings, policy: Policy, state: str, context: dict[str, Any], why: str
) -> Step:
    """End the decision; a canary it started is taken down first."""
    if state == "rolling_out":
        try:
            return _undo(settings, policy, context, why)
        except FerryError as e:
            why = f"{why}; and rolling back failed: {e}"
    return Step("done", "failed", f"failed at {state}: {why}", "failed")


_Handler = Callable[[Settings, Policy, DecisionRecord, dict[str, Any], int], Step | None]
_HANDLERS: dict[str, _Handler] = {
    "triggered": _prepare_data,
    "data_ready": _train,
    "trained": _gate,
    "gated": _start_rollout,
    "approved": _start_rollout,
    "rolling_out": _roll_out,
}
# The context keys each kind of event keeps as its evidence.
_DETAILS = {
    "data": ("data", "rows", "holdout"),
    "trained": ("pipeline_run", "model", "candidate", "champion"),
    "gate": ("gate", "candidate", "champion"),
    "rollout": ("step", "observed"),
    "promoted": ("model", "candidate", "observed"),
    "rolled_back": ("observed",),
    "failed": ("pipeline_run",),
}
