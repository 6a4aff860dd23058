"""The schema of ``ferry.yaml``'s sections, as pydantic models: types, ranges and the
checks that need no store. ``ferryml._configfile`` reads the file against them; the parts
turn them into their own objects (``Gate``, alert ``Rule``\\ s, channels, expectations)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    model_validator,
)

from ferryml._duration import parse_duration
from ferryml._naming import NAME_HELP, is_name

__all__ = [
    "AlertsConfig",
    "ChannelSpec",
    "DaskConfig",
    "DatasetConfig",
    "Duration",
    "ExpectationConfig",
    "GateConfig",
    "ModelConfig",
    "MonitoringConfig",
    "Name",
    "Number",
    "PathName",
    "RuleConfig",
    "Strict",
    "Text",
]


class Strict(BaseModel):
    """A section of the file: unknown fields are refused, and values are not coerced
    (``"0.5"`` is not a number, ``1`` is not true)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _duration(value: Any) -> float:
    return parse_duration(value)  # InvalidArgument is a ValueError: pydantic reports it


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _named(*, paths: bool) -> AfterValidator:
    def check(value: str) -> str:
        if not is_name(value, paths=paths):
            also = " (and / between parts)" if paths else ""
            raise ValueError(f"is not a name: use {NAME_HELP}{also}; got {value!r:.80}.")
        return value

    return AfterValidator(check)


Name = Annotated[str, _named(paths=False)]  # the one rule for names (``ferryml._naming``)
PathName = Annotated[str, _named(paths=True)]  # datasets: names joined by /
Duration = Annotated[float, BeforeValidator(_duration)]
Number = Annotated[float, AfterValidator(lambda v: _finite(v))]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number; got {value!r}.")
    return value


# -- models: gates ------------------------------------------------------------------------


class GateConfig(Strict):
    """``models.NAME.gate`` and ``policies.NAME.gate``: see ``ferryml.registry.gates.Gate``."""

    metric: Text | None = None  # default: the task's (``default_gate``)
    min_delta: Number = 0.0
    max_slice_drop: Number | None = None
    max_latency_ms: Number | None = None
    floors: dict[str, Number] = {}
    compatible_signature: bool = True


class ModelConfig(Strict):
    gate: GateConfig | None = None


# -- models: data expectations --------------------------------------------------------------


def _bound(value: Any) -> Any:
    if value is None:  # ``min:`` left empty: no bound
        return None
    if isinstance(value, bool):
        raise ValueError(f"must be a number or a date such as 2024-01-01; got {value!r}.")
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    if isinstance(value, dt.date):  # YAML reads an unquoted 2024-01-01 as a date
        return value
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.strip())
            return value.strip()
        except ValueError:
            pass
    raise ValueError(f"must be a number or a date such as 2024-01-01; got {value!r:.80}.")


Bound = Annotated[Any, BeforeValidator(_bound)]


class _Column(Strict):
    column: Text


class RangeConfig(_Column):
    min: Bound = None
    max: Bound = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeConfig:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both, e.g. {column: age, min: 0, max: 120}.")
        low, high = self.min, self.max
        if low is None or high is None:
            return self
        numbers = [isinstance(b, int | float) for b in (low, high)]
        if numbers[0] != numbers[1]:
            raise ValueError(f"min {low} and max {high} differ: give two numbers or two dates.")
        if all(numbers) and low > high:  # dates: compared once the column's time zone is known
            raise ValueError(f"min {low!r} is above max {high!r}.")
        return self


class AllowedValuesConfig(_Column):
    values: Annotated[list[Any], AfterValidator(lambda v: _non_empty(v, "values"))]


class RegexConfig(_Column):
    pattern: str

    @model_validator(mode="after")
    def _compiles(self) -> RegexConfig:
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {e}.") from e
        return self


class RowCountConfig(Strict):
    min: Annotated[int, AfterValidator(lambda v: _at_least(v, 0))] | None = None
    max: Annotated[int, AfterValidator(lambda v: _at_least(v, 0))] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RowCountConfig:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both, e.g. {min: 100}.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}.")
        return self


class FreshnessConfig(_Column):
    max_age: Annotated[float, BeforeValidator(lambda v: parse_duration(v, positive=True))]


class CustomConfig(Strict):
    function: Annotated[Text, AfterValidator(lambda v: _import_path(v))]
    name: Text | None = None


# the kinds, and the field that a bare value (``not_null: age``) stands for
_EXPECTATIONS: dict[str, tuple[type[Strict], str | None]] = {
    "not_null": (_Column, "column"),
    "range": (RangeConfig, None),
    "allowed_values": (AllowedValuesConfig, None),
    "unique": (_Column, "column"),
    "regex": (RegexConfig, None),
    "row_count": (RowCountConfig, None),
    "freshness": (FreshnessConfig, None),
    "custom": (CustomConfig, "function"),
}


class ExpectationConfig(Strict):
    """One item of ``data.NAME.expectations``: a mapping with one key, the kind."""

    not_null: _Column | None = None
    range: RangeConfig | None = None
    allowed_values: AllowedValuesConfig | None = None
    unique: _Column | None = None
    regex: RegexConfig | None = None
    row_count: RowCountConfig | None = None
    freshness: FreshnessConfig | None = None
    custom: CustomConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        known = ", ".join(_EXPECTATIONS)
        if not isinstance(data, Mapping) or len(data) != 1:
            raise ValueError(
                f"write each expectation as a mapping with one key, its kind ({known}), e.g. "
                f"- range: {{column: age, min: 0, max: 120}}; got {data!r:.80}."
            )
        ((kind, body),) = data.items()
        bare = _EXPECTATIONS[kind][1] if kind in _EXPECTATIONS else None
        if bare is not None and isinstance(body, str):
            return {kind: {bare: body}}
        return data

    @property
    def kind(self) -> str:
        return next(k for k in _EXPECTATIONS if getattr(self, k) is not None)

    @property
    def body(self) -> Strict:
        body = getattr(self, self.kind)
        assert isinstance(body, Strict)
        return body


class DatasetConfig(Strict):
    expectations: list[ExpectationConfig] = []


# -- models: alerts and channels -------------------------------------------------------------

_OPS = (">", ">=", "<", "<=", "dropped_by", "rose_by")


def _op(value: Any) -> Any:
    return re.sub(r"[\s_]+", "_", value.strip().lower()) if isinstance(value, str) else value


def _threshold(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(
        r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", value
    ):
        return float(value)
    return value


def _metric(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.\-/]*", value):
        raise ValueError(f"must be a metric name such as drift_share; got {value!r:.80}.")
    return value


class RuleConfig(Strict):
    """An alert rule: its text (``drift_share > 0.3 for 2 windows``) or this mapping."""

    metric: Annotated[str, AfterValidator(lambda v: _metric(v))]
    op: Annotated[Literal[">", ">=", "<", "<=", "dropped_by", "rose_by"], BeforeValidator(_op)]
    threshold: Annotated[Number, BeforeValidator(_threshold)]
    name: Annotated[Text, StringConstraints(max_length=250)] | None = None
    windows: Annotated[int, AfterValidator(lambda v: _at_least(v, 1))] = 1
    cooldown: Duration = 3600.0
    channels: Annotated[
        list[Text], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)
    ] = []

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            from ferryml.monitoring.rules import parse_rule  # the grammar lives with the rules

            rule = parse_rule(data)  # raises InvalidArgument, a ValueError, if malformed
            return {
                "metric": rule.metric,
                "op": rule.op,
                "threshold": rule.threshold,
                "windows": rule.windows,
                "cooldown": rule.cooldown_s,
            }
        return data

    @model_validator(mode="after")
    def _positive_change(self) -> RuleConfig:
        if self.op in ("dropped_by", "rose_by") and self.threshold <= 0:
            word = self.op.replace("_", " ")
            raise ValueError(f"{word} needs a positive threshold; got {self.threshold!r}.")
        return self


class _Web(Strict):
    url: Text | None = None
    url_env: Text | None = None
    timeout: Annotated[Number, AfterValidator(lambda v: _above(v, 0))] = 10.0

    @model_validator(mode="before")
    @classmethod
    def _bare_url(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _has_url(self) -> _Web:
        if self.url is None and self.url_env is None:
            raise ValueError("give url (or url_env, the variable that holds it).")
        return self


class _Email(Strict):
    host: Text
    sender: Text
    to: Annotated[list[Text], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]
    port: Annotated[int, AfterValidator(lambda v: _at_least(v, 1))] = 25
    username: Text | None = None
    password: str | None = None
    password_env: Text | None = None
    starttls: bool = False
    timeout: Annotated[Number, AfterValidator(lambda v: _above(v, 0))] = 10.0


class ChannelSpec(Strict):
    """A channel: ``log``, or a mapping with one key, its kind: webhook, slack or email."""

    log: None = None
    webhook: _Web | None = None
    slack: _Web | None = None
    email: _Email | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if data == "log" or (
            isinstance(data, Mapping) and dict(data) in ({"log": None}, {"log": {}})
        ):
            return {}
        if not isinstance(data, Mapping) or len(data) != 1:
            raise ValueError(
                "is not one of log, webhook, slack, email: write log or a mapping with one "
                "key, its kind, e.g. {slack: 'https://hooks.slack.com/services/...'}."
            )
        return data

    @property
    def kind(self) -> str:
        return next((k for k in ("webhook", "slack", "email") if getattr(self, k)), "log")


class AlertsConfig(Strict):
    rules: Annotated[
        list[RuleConfig], BeforeValidator(lambda v: [v] if isinstance(v, str | Mapping) else v)
    ] = []
    channels: dict[str, ChannelSpec] | None = None

    @model_validator(mode="after")
    def _known_channels(self) -> AlertsConfig:
        named = set(self.channels) if self.channels is not None else {"log"}
        for rule in self.rules:
            missing = [c for c in rule.channels if c not in named]
            if missing:
                raise ValueError(
                    f"alert rule {rule.name or rule.metric!r} sends to channel {missing[0]!r}, "
                    f"which is not configured; the channels are: {', '.join(sorted(named))}."
                )
        return self


class MonitoringConfig(Strict):
    alerts: AlertsConfig | None = None


class DaskConfig(Strict):
    """``dask:``: the cluster that data work (profiles, drift, batch inference) runs on."""

    address: Text | None = None  # tcp://scheduler:8786


# -- small checks -----------------------------------------------------------------------------


def _at_least(value: int, low: int) -> int:
    if value < low:
        raise ValueError(f"must be at least {low}; got {value!r}.")
    return value


def _above(value: float, low: float) -> float:
    if value <= low:
        raise ValueError(f"must be above {low:g}; got {value!r}.")
    return value


def _non_empty(value: list[Any], what: str) -> list[Any]:
    if not value:
        raise ValueError(f"{what} must list at least one value.")
    return value


def _import_path(value: str) -> str:
    module, _, attr = value.partition(":")
    if not module or not attr:
        raise ValueError(f"{value!r} is not an import path 'package.module:function'.")
    return value
