"""The schema of a policy in ``ferry.yaml`` (``policies.NAME``), as pydantic models;
``ferryml.automation.policy`` turns a checked one into a ``Policy``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, field_validator, model_validator

from ferryml._configtypes import Duration, GateConfig, Number, Strict, Text

__all__ = ["PolicyConfig", "RetrainConfig", "RolloutConfig", "RolloutStepConfig", "TriggerConfig"]

TRIGGERS = ("alert", "metric", "schedule", "new_labels")
# the fields each kind of trigger takes
_TRIGGER_FIELDS = {
    "alert": ("alert", "rule"),
    "metric": ("metric", "monitor"),
    "schedule": ("schedule",),
    "new_labels": ("new_labels",),
}


def _whole(low: int) -> Any:
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"must be a whole number of at least {low}; got {value!r}.")
        return value

    return AfterValidator(check)


class TriggerConfig(Strict):
    """What starts a retraining: exactly one of alert, metric, schedule, new_labels."""

    alert: Text | None = None
    rule: Text | None = None
    metric: Text | None = None
    monitor: Text | None = None
    schedule: Text | None = None
    new_labels: Annotated[int, _whole(1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # pydantic says it must be a mapping
        kinds = [k for k in TRIGGERS if k in data]
        if len(kinds) != 1:
            raise ValueError(
                f"name exactly one of {', '.join(TRIGGERS)}; got {sorted(map(str, data))}."
            )
        takes = _TRIGGER_FIELDS[kinds[0]]
        extra = sorted(str(k) for k in data if k not in takes)
        if extra:
            raise ValueError(
                f"{extra[0]!r} does not go with a {kinds[0]} trigger, which takes "
                f"{', '.join(takes)}."
            )
        if kinds[0] == "metric" and data.get("monitor") is None:
            raise ValueError("a metric trigger needs the monitor whose windows it reads.")
        return data

    @field_validator("metric")
    @classmethod
    def _one_window_rule(cls, rule: str | None) -> str | None:
        if rule is None:
            return None
        from ferryml.monitoring.rules import parse_rule

        parsed = parse_rule(rule)  # InvalidArgument is a ValueError: reported on this field
        relative = parsed.op in ("dropped_by", "rose_by")
        if relative or parsed.windows != 1 or "cooldown" in rule.lower():
            raise ValueError(
                f"{rule!r} compares one window with a bound (e.g. 'accuracy < 0.8'); for "
                "'dropped by', 'for N windows' or a cool-down, make it a monitor rule and "
                "trigger on its alert."
            )
        return rule

    @field_validator("schedule")
    @classmethod
    def _cron(cls, cron: str | None) -> str | None:
        if cron is not None:
            from ferryml.pipelines.schedule import next_occurrence

            next_occurrence(cron, 0)  # raises InvalidArgument naming what is wrong
        return cron

    @property
    def kind(self) -> str:
        return next(k for k in TRIGGERS if getattr(self, k) is not None)


class RetrainConfig(Strict):
    pipeline: Text
    data: Text | None = None
    data_param: Text = "data"
    feedback: Annotated[int, _whole(0)] = 5000
    feedback_since: Literal["any", "trigger"] = "any"
    min_rows: Annotated[int, _whole(0)] = 0
    max_wait: Duration = 86400.0
    holdout: Number = 0.3
    params: dict[str, Any] = {}
    executor: Literal["local", "process", "dask"] = "local"
    address: Text | None = None

    @field_validator("pipeline")
    @classmethod
    def _target(cls, pipeline: str) -> str:
        if ":" not in pipeline:
            raise ValueError(f"{pipeline!r} is not FILE.py:PIPELINE or MODULE:PIPELINE.")
        return pipeline

    @field_validator("holdout")
    @classmethod
    def _share(cls, holdout: float) -> float:
        if not 0.0 <= holdout < 1.0:
            raise ValueError(f"must be at least 0 and below 1; got {holdout}.")
        return holdout

    @field_validator("address")
    @classmethod
    def _scheduler(cls, address: str | None) -> str | None:
        if address is not None and "://" not in address:
            raise ValueError(f"{address!r} is not a scheduler's address such as tcp://host:8786.")
        return address

    @model_validator(mode="after")
    def _reachable(self) -> RetrainConfig:
        if self.address is not None and self.executor != "dask":
            raise ValueError(
                f"address is a Dask scheduler's, for executor: dask (executor is {self.executor})."
            )
        if self.min_rows > self.feedback:
            raise ValueError(
                f"min_rows: {self.min_rows} fresh labels can never be found when at most "
                f"feedback={self.feedback} are taken in; lower min_rows or raise feedback."
            )
        return self


class RolloutStepConfig(Strict):
    """A canary step: ``weight`` percent of the traffic until the canary served
    ``requests`` requests and ``minutes`` passed."""

    weight: Number
    requests: Annotated[int, _whole(0)] | None = None  # default 100, or 0 with minutes
    minutes: Number = 0.0

    @field_validator("weight")
    @classmethod
    def _percent(cls, weight: float) -> float:
        if not 0 < weight < 100:
            raise ValueError(f"must be above 0 and below 100 (percent); got {weight}.")
        return weight

    @field_validator("minutes")
    @classmethod
    def _not_negative(cls, minutes: float) -> float:
        if minutes < 0:
            raise ValueError(f"must be at least 0; got {minutes}.")
        return minutes

    @model_validator(mode="after")
    def _ends(self) -> RolloutStepConfig:
        if self.requests == 0 and self.minutes == 0:
            raise ValueError("give the step requests, minutes or both.")
        return self

    @property
    def served(self) -> int:
        """The requests the step waits for."""
        if self.requests is not None:
            return self.requests
        return 0 if self.minutes else 100


class RolloutConfig(Strict):
    steps: Annotated[list[RolloutStepConfig], AfterValidator(lambda s: _non_empty(s))] = [
        RolloutStepConfig(weight=10.0, requests=100),
        RolloutStepConfig(weight=50.0, requests=100),
    ]
    minutes: Number = 60.0
    max_drop: Number = 0.05
    min_labelled: Annotated[int, _whole(0)] = 30

    @model_validator(mode="after")
    def _bounds(self) -> RolloutConfig:
        if self.minutes <= 0 or self.max_drop < 0:
            raise ValueError("minutes must be positive and max_drop at least 0.")
        longest = max(s.minutes for s in self.steps)
        if longest >= self.minutes:
            raise ValueError(
                f"minutes: the longest a step may take ({self.minutes:g}) must exceed every "
                f"step's minutes (up to {longest:g})."
            )
        return self


def _non_empty(steps: list[RolloutStepConfig]) -> list[RolloutStepConfig]:
    if not steps:
        raise ValueError("give a list of {weight, requests} steps.")
    return steps


class PolicyConfig(Strict):
    """``policies.NAME``: see ``ferryml.automation.policy`` for each field."""

    deployment: Text
    triggers: list[TriggerConfig]
    retrain: RetrainConfig
    task: Literal["classification", "regression"] = "classification"
    target: Text = "label"
    mode: Literal["auto", "approval"] = "auto"
    gate: GateConfig = GateConfig()
    rollout: RolloutConfig = RolloutConfig()
    cooldown: Duration = 3600.0
    max_per_day: Annotated[int, _whole(1)] = 3

    @field_validator("triggers")
    @classmethod
    def _some(cls, triggers: list[TriggerConfig]) -> list[TriggerConfig]:
        if not triggers:
            raise ValueError(
                "give a list of at least one trigger (alert, metric, schedule, new_labels)."
            )
        return triggers
