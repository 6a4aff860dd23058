"""Promotion gates: evaluate a candidate and the current holder of an alias on the same
data, and move the alias only if the candidate passes. The decision, with its evidence,
goes into the audit trail whether it passes or not."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ferryml._identity import current_user
from ferryml.errors import InvalidArgument, NotFound, StoreUnavailable
from ferryml.registry.models import Registry, check_model_name

__all__ = [
    "DEFAULT_METRIC",
    "Check",
    "Decision",
    "Gate",
    "default_gate",
    "evaluate_version",
    "gate_from_config",
    "infer_task",
    "promote",
    "check_gated",
    "promote_on_rows",
    "task_of",
]

LOWER_IS_BETTER = {"mae", "rmse", "log_loss", "mse"}
# The metric a gate compares when none is named: the one definition, for every task.
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}


@dataclass(frozen=True)
class Gate:
    """What a candidate must show. ``metric`` must beat the champion's by ``min_delta``
    (lower for error metrics); no slice may be worse than the champion's by more than
    ``max_slice_drop``; latency per row under ``max_latency_ms``; ``floors`` are absolute
    minimums (maximums for error metrics); the signature must still accept the champion's
    inputs."""

    metric: str = DEFAULT_METRIC["classification"]
    min_delta: float = 0.0
    max_slice_drop: float | None = None
    max_latency_ms: float | None = None
    floors: Mapping[str, float] = field(default_factory=dict)
    compatible_signature: bool = True

    @classmethod
    def from_config(cls, data: Mapping[str, Any], task: str = "classification") -> Gate:
        """A gate from its ``ferry.yaml`` mapping; without a metric, the task's default.

        Raises:
            InvalidArgument: a setting is unknown or of the wrong type; the message names it.
        """
        from ferryml._configfile import check
        from ferryml._configtypes import GateConfig

        def wrong(field: str, detail: str) -> InvalidArgument:
            return InvalidArgument(f"Gate {data!r:.200}: {field + ': ' if field else ''}{detail}")

        return gate_from_config(check(GateConfig, data, wrong), task)


def default_gate(task: str) -> Gate:
    """The gate used when none is configured: the task's metric must not get worse."""
    return Gate(metric=DEFAULT_METRIC.get(task, DEFAULT_METRIC["classification"]))


def gate_from_config(config: Any, task: str) -> Gate:
    """A gate from its checked ``ferry.yaml`` form (``GateConfig``)."""
    return Gate(
        metric=config.metric or default_gate(task).metric,
        min_delta=config.min_delta,
        max_slice_drop=config.max_slice_drop,
        max_latency_ms=config.max_latency_ms,
        floors=dict(config.floors),
        compatible_signature=config.compatible_signature,
    )


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    name: str
    candidate: int
    alias: str
    champion: int | None
    passed: bool
    forced: bool
    moved: bool
    checks: tuple[Check, ...]
    candidate_metrics: Mapping[str, float]
    champion_metrics: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def infer_task(model: Any) -> str:
    """``classification`` or ``regression``, as a loaded model says it is: its
    scikit-learn estimator type (pipelines, XGBoost's and LightGBM's models included), else
    ``predict_proba`` marks a classifier.

    Raises:
        InvalidArgument: the model does not say (a plain function, say): pass the task.
    """
    from sklearn.base import is_classifier, is_regressor

    raw = model.raw
    if hasattr(raw, "__sklearn_tags__"):  # scikit-learn's API; other objects cannot say
        if is_regressor(raw):
            return "regression"
        if is_classifier(raw):
            return "classification"
    if model.has_proba:
        return "classification"
    raise InvalidArgument(
        f"Cannot tell whether {model.uri} ({model.flavor}) is a classifier or a regressor; "
        "pass the task (--task classification or --task regression)."
    )


def task_of(registry: Registry, ref: str) -> str:
    """The task of a registered version (``NAME/VERSION``, ``NAME@ALIAS``): ``infer_task``."""
    version = registry.version(ref)
    return infer_task(registry.load(f"models:/{version.name}/{version.version}"))


def evaluate_version(
    registry: Registry,
    ref: str,
    data: Any,
    *,
    target: str,
    task: str | None = None,
    slices: Sequence[str] = (),
    business_metrics: Mapping[str, Callable[..., float]] | None = None,
    plots: bool = False,
) -> Any:
    """Evaluate a registered version and store its metrics on it; ``task`` defaults to
    what the model is (``infer_task``)."""
    from ferryml.registry.evaluation import evaluate_predictor

    version = registry.version(ref)
    model = registry.load(f"models:/{version.name}/{version.version}")
    evaluation = evaluate_predictor(
        _Prepared(model),
        data,
        target=target,
        task=task or infer_task(model),  # type: ignore[arg-type]
        slices=slices,
        business_metrics=business_metrics,
        plots=plots,
        importance=plots,
    )
    metrics = {**evaluation.metrics, "latency_ms_per_row": evaluation.latency_ms_per_row}
    registry.store.update_model_version(
        version.name, version.version, user=current_user(), metrics=metrics
    )
    return evaluation


class _Prepared:
    """A loaded model seen as a predictor that takes the evaluation frame (with the target
    and any other extra columns) and keeps to the signature's columns."""

    def __init__(self, model: Any) -> None:
        self._model = model
        if model.has_proba:
            self.predict_proba = model.predict_proba
        classes = getattr(model.raw, "classes_", None)
        if classes is not None:  # which probability column is which class
            self.classes_ = classes

    def predict(self, data: Any) -> Any:
        return self._model.predict(data)


def promote(
    registry: Registry,
    name: str,
    candidate: int,
    *,
    alias: str = "champion",
    data: Any,
    target: str,
    task: str | None = None,
    gate: Gate | None = None,
    force: bool = False,
    reason: str = "",
    slices: Sequence[str] = (),
    business_metrics: Mapping[str, Callable[..., float]] | None = None,
    move: bool = True,
) -> Decision:
    """Evaluate ``candidate`` and the version holding ``alias`` on ``data``; move the alias
    to the candidate if the gate passes (or ``force``); record the decision either way.
    With ``move=False`` only judge: nothing is moved or recorded (a rollout moves the
    alias later, once the candidate proved itself in production)."""
    check_model_name(name)
    judge = getattr(registry.store, "promote", None)
    if judge is not None and move:
        # A team server runs its own gate, so that no client can skip or loosen it.
        if business_metrics:
            raise InvalidArgument(
                "Business metrics are functions and cannot be sent to a team server; "
                "promote without them, or on the server's host."
            )
        found = judge(
            name,
            int(candidate),
            alias=alias,
            rows=_parquet(data),
            target=target,
            task=task,
            force=force,
            reason=reason,
            slices=list(slices),
        )
        return _decision(found)
    gate = gate or default_gate(task or task_of(registry, f"{name}/{int(candidate)}"))
    version = registry.store.get_model_version(name, int(candidate))
    champion = _holder(registry, name, alias)
    if champion == version.version:
        raise InvalidArgument(f"Version {candidate} of {name!r} holds {alias!r} already.")
    kwargs = {
        "target": target,
        "task": task,
        "slices": slices,
        "business_metrics": business_metrics,
    }
    new = evaluate_version(registry, f"{name}/{candidate}", data, **kwargs)  # type: ignore[arg-type]
    old = evaluate_version(registry, f"{name}/{champion}", data, **kwargs) if champion else None  # type: ignore[arg-type]
    checks = _checks(gate, new, old, registry, name, candidate, champion)
    passed = all(c.passed for c in checks)
    moved = (passed or force) and move
    evidence = {
        "gate": asdict(gate),
        "checks": [asdict(c) for c in checks],
        "candidate": new.to_dict(),
        "champion": old.to_dict() if old else None,
        "forced": force and not passed,
    }
    note = reason or ("gate passed" if passed else "gate failed")
    if moved:
        registry.store.set_alias(
            name,
            alias,
            version.version,
            user=current_user(),
            reason=("FORCED: " if force and not passed else "") + note,
            evidence=evidence,
            action="promote",
        )
    elif move:
        registry.store.record_refusal(
            name,
            alias,
            version.version,
            champion=champion,
            user=current_user(),
            reason=note,
            evidence=json.loads(json.dumps(evidence, default=str)),
        )
    return Decision(
        name,
        version.version,
        alias,
        champion,
        passed,
        force and not passed,
        moved,
        tuple(checks),
        dict(new.metrics),
        dict(old.metrics) if old else {},
    )


def promote_on_rows(
    registry: Registry,
    name: str,
    candidate: int,
    *,
    alias: str,
    rows: bytes,
    target: str,
    task: str | None,
    force: bool,
    reason: str,
    slices: Sequence[str],
) -> Decision:
    """``promote`` as a team server runs it for a client: on the evaluation rows the client
    sent (Parquet), judged by the gate the server's ``ferry.yaml`` names (else the default
    gate). A gate the client sends is not used: a client could send a looser one."""
    import io

    import pandas as pd

    from ferryml.registry.api import configured_gate

    try:
        data = pd.read_parquet(io.BytesIO(rows))
    except (ValueError, OSError) as e:
        raise InvalidArgument(f"The evaluation rows are not a Parquet file: {e}.") from e
    task = task or task_of(registry, f"{name}/{int(candidate)}")
    judged_by = configured_gate(registry.settings.root, name, task)
    return promote(
        registry,
        name,
        candidate,
        alias=alias,
        data=data,
        target=target,
        task=task,
        gate=judged_by,
        force=force,
        reason=reason,
        slices=slices,
    )


def check_gated(
    decisions: Any, name: str, version: int, evidence: Mapping[str, Any] | None
) -> None:
    """Refuse an alias move that calls itself a promotion unless a gate passed it: the
    retraining decision its evidence names (stored, as the agent stores them) judged this
    version of this model and passed it.

    Raises:
        InvalidArgument: no such decision, or not for this version, or its gate failed.
    """
    decision_id = (evidence or {}).get("decision")
    context: Mapping[str, Any] = {}
    if isinstance(decision_id, int):
        with contextlib.suppress(NotFound):
            context = decisions.get_decision(decision_id).context
    gate = context.get("gate") or {}
    if (context.get("model"), context.get("candidate"), gate.get("passed")) != (
        name,
        version,
        True,
    ):
        raise InvalidArgument(
            f"Moving {name!r} to version {version} as a promotion needs its gate to pass: "
            "promote through the gate (`ferry models promote`, POST "
            f"/api/v1/models/{name}/promotions), or move the alias as such (action set_alias)."
        )


def _parquet(data: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _decision(found: Mapping[str, Any]) -> Decision:
    checks = tuple(Check(**c) for c in found["checks"])
    return Decision(**{**found, "checks": checks})


def _holder(registry: Registry, name: str, alias: str) -> int | None:
    """The version holding ``alias``, or None when no version holds it yet. Any other
    failure refuses the promotion: a candidate is never passed unjudged."""
    try:
        return registry.store.resolve_alias(name, alias)
    except NotFound:
        return None
    except SQLAlchemyError as e:
        why = getattr(e, "orig", None) or e
        raise StoreUnavailable(
            f"Cannot read which version of {name!r} holds {alias!r}, so the candidate "
            f"cannot be compared with it: {why}. Nothing was promoted; try again once the "
            "store answers."
        ) from e


def _checks(
    gate: Gate,
    new: Any,
    old: Any,
    registry: Registry,
    name: str,
    candidate: int,
    champion: int | None,
) -> list[Check]:
    lower = gate.metric in LOWER_IS_BETTER
    checks = []
    value = new.metrics.get(gate.metric)
    if value is None:
        raise InvalidArgument(
            f"Gate metric {gate.metric!r} was not computed; available: "
            f"{', '.join(sorted(new.metrics))}."
        )
    if old is not None:
        base = old.metrics[gate.metric]
        bar = base - gate.min_delta if lower else base + gate.min_delta
        ok = value <= bar if lower else value >= bar
        checks.append(
            Check(
                gate.metric,
                ok,
                f"candidate {value:.6g} vs champion {base:.6g} "
                f"{'-' if lower else '+'} {gate.min_delta:g} = {bar:.6g}",
            )
        )
        if gate.max_slice_drop is not None:
            theirs = {(s.column, s.value): s.metrics for s in old.slices}
            for s in new.slices:
                if gate.metric in s.metrics and gate.metric in theirs.get((s.column, s.value), {}):
                    before = theirs[(s.column, s.value)][gate.metric]
                    drop = (
                        (s.metrics[gate.metric] - before)
                        if lower
                        else (before - s.metrics[gate.metric])
                    )
                    checks.append(
                        Check(
                            f"slice {s.value}",
                            drop <= gate.max_slice_drop,
                            f"{gate.metric} {s.metrics[gate.metric]:.6g} vs "
                            f"{before:.6g} (worse by {max(drop, 0):.6g}, bound "
                            f"{gate.max_slice_drop:g})",
                        )
                    )
        if gate.compatible_signature:
            checks.append(_signature_check(registry, name, candidate, champion))
    else:
        checks.append(Check("champion", True, "no champion yet: the first version passes"))
    for metric, floor in gate.floors.items():
        got = new.metrics.get(metric)
        ok = got is not None and (got <= floor if metric in LOWER_IS_BETTER else got >= floor)
        checks.append(Check(f"floor {metric}", ok, f"{got} vs {floor:g}"))
    if gate.max_latency_ms is not None:
        checks.append(
            Check(
                "latency",
                new.latency_ms_per_row <= gate.max_latency_ms,
                f"{new.latency_ms_per_row:.4f} ms per row, bound {gate.max_latency_ms:g}",
            )
        )
    return checks


def _signature_check(registry: Registry, name: str, candidate: int, champion: int | None) -> Check:
    from ferryml.registry.signature import Signature

    new = registry.store.get_model_version(name, candidate).signature
    old = registry.store.get_model_version(name, champion).signature if champion else None
    if not new or not old:
        return Check("signature", True, "no signature to compare")
    problems = Signature.from_dict(json.loads(new)).compatible_with(
        Signature.from_dict(json.loads(old))
    )
    return Check("signature", not problems, "; ".join(problems) or "accepts the champion's inputs")
