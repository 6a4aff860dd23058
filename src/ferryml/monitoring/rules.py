"""Alert rules: a metric, a comparison, a threshold and how many consecutive windows must
breach it, written as text (``drift_share > 0.3 for 2 windows``) or as a ``ferry.yaml``
mapping. ``AlertManager`` (``ferryml.monitoring.alerts``) evaluates them."""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ferryml._duration import parse_duration
from ferryml.errors import InvalidArgument
from ferryml.monitoring.channels import _num

__all__ = ["OPS", "Rule", "parse_rule"]

OPS = (">", ">=", "<", "<=", "dropped_by", "rose_by")
_RELATIVE = ("dropped_by", "rose_by")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_RULE_EXAMPLE = "'drift_share > 0.3 for 2 windows'"
_RULE_FORM = (
    "Write METRIC OP THRESHOLD [for N windows] [cooldown DURATION], with OP one of "
    f">, >=, <, <=, dropped by, rose by, e.g. {_RULE_EXAMPLE} or 'accuracy dropped by 0.05'."
)
_MAPPING_FORM = (
    "Give metric, op and threshold, and optionally name, windows, cooldown and channels, "
    "e.g. {metric: accuracy, op: '<', threshold: 0.85, windows: 2, channels: [ops]}."
)
_METRIC = r"[A-Za-z_][\w.\-/]*"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Rule:
    """When to alert: ``metric op threshold`` for ``windows`` consecutive windows.

    Args:
        name: identifies the rule's state and history; keep it stable.
        metric: a key of the metrics given to ``AlertManager.evaluate``.
        op: one of ``OPS``. ``dropped_by``/``rose_by`` compare with a reference (see the
            module's docstring) and breach when the change is at least ``threshold``.
        threshold: a finite number; positive for ``dropped_by``/``rose_by``.
        windows: consecutive breaching windows before the alert fires, at least 1.
        cooldown_s: seconds after an alert during which the rule fires no other.
        channels: names of the channels to notify; empty means all of them.

    Raises:
        InvalidArgument: a field is out of range.
    """

    name: str
    metric: str
    op: str
    threshold: float
    windows: int = 1
    cooldown_s: float = 3600.0
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        config = _checked_rule(fields, repr(self.name), _RULE_FORM)
        object.__setattr__(self, "threshold", config.threshold)
        object.__setattr__(self, "cooldown_s", config.cooldown)
        object.__setattr__(self, "channels", tuple(config.channels))

    @property
    def text(self) -> str:
        """The condition as ``parse_rule`` reads it, e.g. ``drift_share > 0.3 for 2 windows``."""
        return _text(self.metric, self.op, self.threshold, self.windows)

    def breached(self, value: float, reference: float | None = None) -> bool:
        """Whether ``value`` breaches the rule; ``reference`` is needed for
        ``dropped_by``/``rose_by`` (False without one)."""
        if self.op in _COMPARE:
            return _COMPARE[self.op](value, self.threshold)
        if reference is None:
            return False
        change = reference - value if self.op == "dropped_by" else value - reference
        return change >= self.threshold or math.isclose(
            change, self.threshold, rel_tol=1e-9, abs_tol=1e-12
        )


def _text(metric: str, op: str, threshold: float, windows: int) -> str:
    more = f" for {windows} windows" if windows > 1 else ""
    return f"{metric} {_word(op)} {_num(threshold)}{more}"


def _checked_rule(fields: Mapping[str, Any], where: str, example: str) -> Any:
    """``fields`` (a rule's, ``cooldown_s`` or ``cooldown``) checked by ``RuleConfig``, the
    schema of a rule in ``ferry.yaml``; errors name the field and end with ``example``."""
    from ferryml._configfile import check
    from ferryml._configtypes import RuleConfig

    given = {("cooldown" if k == "cooldown_s" else k): v for k, v in fields.items()}
    if isinstance(given.get("channels"), tuple):
        given["channels"] = list(given["channels"])

    def wrong(field: str, detail: str) -> InvalidArgument:
        named = f"{field}: " if field else ""
        return InvalidArgument(f"Alert rule {where} is invalid: {named}{detail} {example}")

    return check(RuleConfig, given, wrong)


def _build(fields: Mapping[str, Any], where: str, example: str) -> Rule:
    """A rule from its fields, named by its condition unless named; errors say where."""
    config = _checked_rule(fields, where, example)
    name = config.name or _text(config.metric, config.op, config.threshold, config.windows)
    return Rule(
        name=name,
        metric=config.metric,
        op=config.op,
        threshold=config.threshold,
        windows=config.windows,
        cooldown_s=config.cooldown,
        channels=tuple(config.channels),
    )


def parse_rule(spec: str | Mapping[str, Any]) -> Rule:
    """A rule from its text or its ``ferry.yaml`` mapping.

    The text is ``METRIC OP THRESHOLD [for N windows] [cooldown DURATION]`` with OP one of
    ``>``, ``>=``, ``<``, ``<=``, ``dropped by``, ``rose by`` and DURATION such as ``90s``,
    ``30min``, ``6h``, ``1d``; the rule is named by its condition. The mapping has the keys
    ``metric, op, threshold`` and optionally ``name, windows, cooldown`` (seconds, or a
    DURATION) and ``channels``.

    Example:
        >>> parse_rule("drift_share > 0.3 for 2 windows").windows
        2

    Raises:
        InvalidArgument: the rule is malformed; the message says which part.
    """
    if isinstance(spec, str):
        return _parse_text(spec)
    if isinstance(spec, Mapping):
        return _parse_mapping(spec)
    raise InvalidArgument(
        f"Alert rule {spec!r} must be text or a mapping, not {type(spec).__name__}. {_RULE_FORM}"
    )


def _parse_text(text: str) -> Rule:
    def bad(what: str) -> InvalidArgument:
        return InvalidArgument(f"Alert rule {text!r} is invalid: {what}. {_RULE_FORM}")

    rest = text.strip()
    found = re.match(_METRIC, rest)
    if found is None:
        raise bad("it does not start with a metric name")
    metric, rest = found.group(), rest[found.end() :].lstrip()
    found = re.match(r"(>=|<=|>|<|dropped[\s_]+by\b|rose[\s_]+by\b)", rest, re.I)
    if found is None:
        shown = rest.split()[0] if rest else "nothing"
        raise bad(f"expected a comparison after {metric!r}, found {shown!r}")
    op = re.sub(r"[\s_]+", "_", found.group().lower())
    rest = rest[found.end() :].lstrip()
    found = re.match(_NUMBER + r"(?!\S)", rest)
    if found is None:
        shown = rest.split()[0] if rest else "nothing"
        raise bad(f"the threshold must be a number, found {shown!r}")
    threshold, rest = float(found.group()), rest[found.end() :].lstrip()
    windows, cooldown = 1, 3600.0
    found = re.match(r"for\s+(\S+)\s+windows?\b", rest, re.I)
    if found is not None:
        if not found.group(1).isdigit():
            raise bad(f"'for {found.group(1)} windows' needs a whole number of windows")
        windows, rest = int(found.group(1)), rest[found.end() :].lstrip()
    found = re.match(r"cooldown\s+(\S+)", rest, re.I)
    if found is not None:
        cooldown, rest = _duration(found.group(1), text), rest[found.end() :].lstrip()
    if rest:
        raise bad(f"unexpected {rest!r} at the end")
    fields = {"metric": metric, "op": op, "threshold": threshold, "windows": windows}
    return _build({**fields, "cooldown_s": cooldown}, repr(text), _RULE_FORM)


def _parse_mapping(spec: Mapping[str, Any]) -> Rule:
    return _build(spec, str(dict(spec)), _MAPPING_FORM)


def _duration(value: Any, where: Any) -> float:
    try:
        return parse_duration(value)
    except InvalidArgument as e:
        raise InvalidArgument(
            f"Alert rule {where!r}: the cool-down {e} Write it e.g. as cooldown 30min."
        ) from e


def _word(op: str) -> str:
    return op.replace("_", " ")
