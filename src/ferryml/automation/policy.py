"""Retraining policies: for a deployment, what starts a retraining, what it trains on, the
gate the new model must pass and how it is rolled out.

Declared in ``ferry.yaml`` under ``policies:`` (one mapping per policy name) or built in
Python with ``Policy.from_dict``. Every field is checked when the policy is loaded; from a
file, the error names the line and the field::

    policies:
      churn-retrain:
        deployment: churn
        mode: auto                 # or approval: wait for `ferry approve ID`
        task: classification
        target: churned            # the label column of the training data
        triggers:
          - alert: churn-watch     # any alert the monitor fires (rule: to pick one)
          - metric: accuracy < 0.8 # the monitor's newest window
            monitor: churn-watch
          - schedule: "0 3 * * *"
          - new_labels: 5000
        retrain:
          pipeline: train.py:training
          data: churn              # a table; the newest version plus fresh labels
          feedback: 2000           # the newest labelled predictions taken in
          feedback_since: trigger  # only those since the window that triggered
          min_rows: 500            # wait until that many fresh labels exist
          max_wait: 1d             # ... at most this long, else give up
          holdout: 0.3             # their newest share, kept out to gate on
          params: {n_estimators: 200}
        gate: {metric: accuracy, min_delta: 0.01}
        rollout:
          steps: [{weight: 20, requests: 200}, {weight: 50, minutes: 30}]
          minutes: 60              # longest a step may take
          max_drop: 0.05           # the canary's labelled metric vs the primary's
          min_labelled: 30
        cooldown: 1h
        max_per_day: 3
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferryml.config import CONFIG_FILE
from ferryml.errors import InvalidArgument
from ferryml.registry.gates import Gate

__all__ = [
    "Policy",
    "Retrain",
    "Rollout",
    "RolloutStep",
    "Trigger",
    "declares_policies",
    "load_policies",
]

MODES = ("auto", "approval")
TRIGGERS = ("alert", "metric", "schedule", "new_labels")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$")
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_REQUIRED = object()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,249}$")


class PolicyError(InvalidArgument):
    """A policy field is wrong; ``path`` names it, e.g. ``rollout.steps[0].weight``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


@dataclass(frozen=True)
class Trigger:
    """What starts a retraining: ``kind`` is alert, metric, schedule or new_labels."""

    kind: str
    monitor: str | None = None  # alert, metric
    rule: str | None = None  # alert: only this rule; metric: the condition
    cron: str | None = None  # schedule
    count: int | None = None  # new_labels

    def describe(self) -> str:
        if self.kind == "alert":
            return f"alert of monitor {self.monitor}" + (f" ({self.rule})" if self.rule else "")
        if self.kind == "metric":
            return f"{self.rule} on monitor {self.monitor}"
        if self.kind == "schedule":
            return f"schedule {self.cron}"
        return f"{self.count} new labels"


@dataclass(frozen=True)
class Retrain:
    pipeline: str
    data: str | None = None
    data_param: str = "data"
    feedback: int = 5000
    feedback_since: str = "any"
    min_rows: int = 0
    max_wait_s: float = 86400.0
    holdout: float = 0.3
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutStep:
    """A canary step: ``weight`` percent of the traffic until the canary served
    ``requests`` requests and ``minutes`` passed (either may be 0)."""

    weight: float
    requests: int = 100
    minutes: float = 0.0


@dataclass(frozen=True)
class Rollout:
    steps: tuple[RolloutStep, ...] = (RolloutStep(10.0, 100), RolloutStep(50.0, 100))
    minutes: float = 60.0
    max_drop: float = 0.05
    min_labelled: int = 30


@dataclass(frozen=True)
class Policy:
    name: str
    deployment: str
    triggers: tuple[Trigger, ...]
    retrain: Retrain
    task: str = "classification"
    target: str = "label"
    mode: str = "auto"
    gate: Gate = field(default_factory=Gate)
    rollout: Rollout = field(default_factory=Rollout)
    cooldown_s: float = 3600.0
    max_per_day: int = 3

    @classmethod
    def from_dict(cls, name: str, data: Any) -> Policy:
        """A policy from its ``ferry.yaml`` mapping.

        Raises:
            PolicyError: a field is missing, unknown or out of range; ``.path`` names it.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise PolicyError("", f"Policy name {name!r} must be 1-250 letters, digits, _ and -.")
        d = _mapping(data, "")
        _known(
            d,
            "",
            {"deployment", "triggers", "retrain", "task", "target", "mode", "gate",
             "rollout", "cooldown", "max_per_day"},
        )  # fmt: skip
        task = _choice(d, "task", ("classification", "regression"), "classification")
        gate_data = _mapping(d.get("gate", {}), "gate")
        gate_default = "accuracy" if task == "classification" else "rmse"
        try:
            gate = Gate.from_config({"metric": gate_default, **gate_data})
        except (InvalidArgument, TypeError) as e:
            raise PolicyError("gate", str(e)) from e
        return cls(
            name=name,
            deployment=_text(d, "deployment"),
            triggers=_triggers(d.get("triggers")),
            retrain=_retrain(d.get("retrain")),
            task=task,
            target=_text(d, "target", default="label"),
            mode=_choice(d, "mode", MODES, "auto"),
            gate=gate,
            rollout=_rollout(d.get("rollout", {})),
            cooldown_s=_duration(d.get("cooldown", "1h"), "cooldown"),
            max_per_day=_integer(d.get("max_per_day", 3), "max_per_day", low=1),
        )


def declares_policies(root: Path) -> bool:
    """Whether ``root/ferry.yaml`` has a ``policies:`` section (even an empty one): only
    then does a policy missing from it mean it was removed."""
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        return False
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "policies" in data


def load_policies(root: Path) -> dict[str, Policy]:
    """The policies of ``root/ferry.yaml``, by name; {} when there is no file or section.

    Raises:
        InvalidArgument: the file is not YAML, or a policy is wrong: the message names
            the file, the line and the field.
    """
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        return {}
    import yaml

    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise InvalidArgument(f"{path} is not valid YAML: {e}. Fix the file.") from e
    section = data.get("policies") if isinstance(data, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InvalidArgument(f"{path} line {_line(node, 'policies')}: policies must be a mapping.")
    policies = {}
    for name, body in section.items():
        try:
            policies[str(name)] = Policy.from_dict(str(name), body)
        except PolicyError as e:
            where = f"policies.{name}" + (f".{e.path}" if e.path else "")
            raise InvalidArgument(f"{path} line {_line(node, where)}: {where}: {e.detail}") from e
    return policies


# -- parsing ------------------------------------------------------------------------------


def _triggers(value: Any) -> tuple[Trigger, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyError(
            "triggers", "give a list of at least one trigger (alert, metric, schedule, new_labels)."
        )
    found = []
    for i, item in enumerate(value):
        path = f"triggers[{i}]"
        d = _mapping(item, path)
        kinds = [k for k in TRIGGERS if k in d]
        if len(kinds) != 1:
            raise PolicyError(path, f"name exactly one of {', '.join(TRIGGERS)}; got {sorted(d)}.")
        kind = kinds[0]
        if kind == "alert":
            _known(d, path, {"alert", "rule"})
            monitor, rule = _text(d, "alert", path=path), _text(d, "rule", path=path, default=None)
            found.append(Trigger("alert", monitor=monitor, rule=rule))
        elif kind == "metric":
            _known(d, path, {"metric", "monitor"})
            from ferryml.monitoring.alerts import parse_rule

            rule = _text(d, "metric", path=path)
            try:
                parsed = parse_rule(rule)
            except InvalidArgument as e:
                raise PolicyError(f"{path}.metric", str(e)) from e
            relative = parsed.op in ("dropped_by", "rose_by")
            if relative or parsed.windows != 1 or "cooldown" in rule.lower():
                raise PolicyError(
                    f"{path}.metric",
                    f"{rule!r} compares one window with a bound (e.g. 'accuracy < 0.8'); for "
                    "'dropped by', 'for N windows' or a cool-down, make it a monitor rule and "
                    "trigger on its alert.",
                )
            found.append(Trigger("metric", monitor=_text(d, "monitor", path=path), rule=rule))
        elif kind == "schedule":
            _known(d, path, {"schedule"})
            from ferryml.store.sql_schedules import next_occurrence

            cron = _text(d, "schedule", path=path)
            try:
                next_occurrence(cron, 0)
            except InvalidArgument as e:
                raise PolicyError(f"{path}.schedule", str(e)) from e
            found.append(Trigger("schedule", cron=cron))
        else:
            _known(d, path, {"new_labels"})
            count = _integer(d["new_labels"], f"{path}.new_labels", low=1)
            found.append(Trigger("new_labels", count=count))
    return tuple(found)


def _retrain(value: Any) -> Retrain:
    d = _mapping(value, "retrain")
    _known(
        d,
        "retrain",
        {"pipeline", "data", "data_param", "feedback", "feedback_since", "min_rows", "max_wait",
         "holdout", "params"},
    )  # fmt: skip
    pipeline = _text(d, "pipeline", path="retrain")
    if ":" not in pipeline:
        raise PolicyError(
            "retrain.pipeline", f"{pipeline!r} is not FILE.py:PIPELINE or MODULE:PIPELINE."
        )
    holdout = _number(d.get("holdout", 0.3), "retrain.holdout")
    if not 0.0 <= holdout < 1.0:
        raise PolicyError("retrain.holdout", f"must be at least 0 and below 1; got {holdout}.")
    feedback = _integer(d.get("feedback", 5000), "retrain.feedback", low=0)
    min_rows = _integer(d.get("min_rows", 0), "retrain.min_rows", low=0)
    if min_rows > feedback:
        raise PolicyError(
            "retrain.min_rows",
            f"{min_rows} fresh labels can never be found when at most feedback={feedback} are "
            "taken in; lower min_rows or raise feedback.",
        )
    return Retrain(
        pipeline=pipeline,
        data=_text(d, "data", path="retrain", default=None),
        data_param=_text(d, "data_param", path="retrain", default="data"),
        feedback=feedback,
        feedback_since=_choice(d, "feedback_since", ("any", "trigger"), "any", "retrain"),
        min_rows=min_rows,
        max_wait_s=_duration(d.get("max_wait", "1d"), "retrain.max_wait"),
        holdout=holdout,
        params=_mapping(d.get("params", {}), "retrain.params"),
    )


def _rollout(value: Any) -> Rollout:
    d = _mapping(value, "rollout")
    _known(d, "rollout", {"steps", "minutes", "max_drop", "min_labelled"})
    default = Rollout()
    steps = default.steps
    if "steps" in d:
        raw = d["steps"]
        if not isinstance(raw, list) or not raw:
            raise PolicyError("rollout.steps", "give a list of {weight, requests} steps.")
        parsed = []
        for i, item in enumerate(raw):
            path = f"rollout.steps[{i}]"
            s = _mapping(item, path)
            _known(s, path, {"weight", "requests", "minutes"})
            weight = _number(s.get("weight"), f"{path}.weight")
            if not 0 < weight < 100:
                raise PolicyError(
                    f"{path}.weight", f"must be above 0 and below 100 (percent); got {weight}."
                )
            lasts = _number(s.get("minutes", 0), f"{path}.minutes")
            if lasts < 0:
                raise PolicyError(f"{path}.minutes", f"must be at least 0; got {lasts}.")
            fallback = 0 if "minutes" in s else 100
            requests = _integer(s.get("requests", fallback), f"{path}.requests", low=0)
            if requests == 0 and lasts == 0:
                raise PolicyError(path, "give the step requests, minutes or both.")
            parsed.append(RolloutStep(weight, requests, lasts))
        steps = tuple(parsed)
    minutes = _number(d.get("minutes", default.minutes), "rollout.minutes")
    max_drop = _number(d.get("max_drop", default.max_drop), "rollout.max_drop")
    if minutes <= 0 or max_drop < 0:
        raise PolicyError("rollout", "minutes must be positive and max_drop at least 0.")
    longest = max(s.minutes for s in steps)
    if longest >= minutes:
        raise PolicyError(
            "rollout.minutes",
            f"the longest a step may take ({minutes:g}) must exceed every step's minutes "
            f"(up to {longest:g}).",
        )
    return Rollout(
        steps,
        minutes,
        max_drop,
        _integer(d.get("min_labelled", default.min_labelled), "rollout.min_labelled", low=0),
    )


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(path, f"must be a mapping; got {type(value).__name__} {value!r:.80}.")
    return {str(k): v for k, v in value.items()}


def _known(d: Mapping[str, Any], path: str, known: set[str]) -> None:
    if unknown := sorted(set(d) - known):
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise PolicyError(where, f"unknown field; use {', '.join(sorted(known))}.")


def _text(d: Mapping[str, Any], key: str, *, path: str = "", default: Any = _REQUIRED) -> Any:
    where = f"{path}.{key}" if path else key
    if key not in d or d[key] is None:
        if default is _REQUIRED:
            raise PolicyError(where, "is required.")
        return default
    value = d[key]
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(where, f"must be non-empty text; got {value!r:.80}.")
    return value.strip()


def _choice(
    d: Mapping[str, Any], key: str, choices: Sequence[str], default: str, path: str = ""
) -> str:
    value = d.get(key, default)
    if value not in choices:
        where = f"{path}.{key}" if path else key
        raise PolicyError(where, f"must be one of {', '.join(choices)}; got {value!r:.80}.")
    return str(value)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(path, f"must be a number; got {value!r:.80}.")
    return float(value)


def _integer(value: Any, path: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PolicyError(path, f"must be a whole number of at least {low}; got {value!r:.80}.")
    return value


def _duration(value: Any, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    found = _DURATION.match(value) if isinstance(value, str) else None
    if found is None:
        raise PolicyError(
            path, f"must be seconds or a duration such as 30m, 1h, 1d; got {value!r:.80}."
        )
    return float(found[1]) * _SECONDS[found[2]]


def _line(root: Any, dotted: str) -> int:
    """The 1-based line of the field at ``dotted`` (``a.b[0].c``) in the composed YAML, or
    of the deepest node on that path that exists (for a missing field: its parent)."""
    import yaml

    node, line = root, 1 if root is None else root.start_mark.line + 1
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        if isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode) and not part.startswith("["):
            found = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        else:
            break
    return line
