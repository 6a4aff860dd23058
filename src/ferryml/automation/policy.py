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
          executor: dask           # or local (the default), process
          address: tcp://scheduler:8786   # else ferry.yaml's dask: address, else a LocalCluster
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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferryml._naming import check_name
from ferryml.errors import InvalidArgument
from ferryml.registry.gates import Gate

if TYPE_CHECKING:
    from ferryml.automation._policy_config import PolicyConfig

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
    executor: str = "local"  # where the pipeline's steps run: local, process or dask
    address: str | None = None  # the Dask scheduler's; a LocalCluster when None


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
        from ferryml._configfile import check
        from ferryml.automation._policy_config import PolicyConfig

        check_name(name, "Policy", "churn-retrain")
        return cls.from_config(name, check(PolicyConfig, data, PolicyError))

    @classmethod
    def from_config(cls, name: str, config: PolicyConfig) -> Policy:
        """A policy from its checked ``ferry.yaml`` form."""
        from ferryml.registry.gates import gate_from_config

        retrain, rollout = config.retrain, config.rollout
        return cls(
            name=check_name(name, "Policy", "churn-retrain"),
            deployment=config.deployment,
            triggers=tuple(
                Trigger(
                    t.kind,
                    monitor=t.alert if t.kind == "alert" else t.monitor,
                    rule=t.rule if t.kind == "alert" else t.metric,
                    cron=t.schedule,
                    count=t.new_labels,
                )
                for t in config.triggers
            ),
            retrain=Retrain(
                pipeline=retrain.pipeline,
                data=retrain.data,
                data_param=retrain.data_param,
                feedback=retrain.feedback,
                feedback_since=retrain.feedback_since,
                min_rows=retrain.min_rows,
                max_wait_s=retrain.max_wait,
                holdout=retrain.holdout,
                params=dict(retrain.params),
                executor=retrain.executor,
                address=retrain.address,
            ),
            task=config.task,
            target=config.target,
            mode=config.mode,
            gate=gate_from_config(config.gate, config.task),
            rollout=Rollout(
                tuple(RolloutStep(s.weight, s.served, s.minutes) for s in rollout.steps),
                rollout.minutes,
                rollout.max_drop,
                rollout.min_labelled,
            ),
            cooldown_s=config.cooldown,
            max_per_day=config.max_per_day,
        )


def declares_policies(root: Path) -> bool:
    """Whether ``root/ferry.yaml`` has a ``policies:`` section (even an empty one): only
    then does a policy missing from it mean it was removed."""
    from ferryml.config import read_config

    try:
        return read_config(root).declares_policies
    except InvalidArgument:
        return False


def load_policies(root: Path) -> dict[str, Policy]:
    """The policies of ``root/ferry.yaml``, by name; {} when there is no file or section.

    Raises:
        ConfigError: the file is not YAML, or a policy is wrong: the message names the
            file, the line and the field.
    """
    from ferryml.config import read_config

    section: Mapping[str, PolicyConfig] = read_config(root).policies or {}
    return {name: Policy.from_config(name, config) for name, config in section.items()}
