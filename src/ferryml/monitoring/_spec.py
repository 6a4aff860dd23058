"""A monitor's spec and its checks: what ``add_monitor`` stores and the team server
checks, without the monitoring machinery (pandas is loaded only to read a ``window:``
reference's times)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ferryml._duration import parse_duration
from ferryml._naming import check_name
from ferryml.errors import InvalidArgument

__all__ = ["CHECKS", "DEFAULT_CHECKS", "NEEDS_TASK", "TASKS", "MonitorSpec", "check_names"]

CHECKS = ("drift", "performance", "concept", "estimated", "importance")
DEFAULT_CHECKS = ("drift", "performance")
# Checks that compare predictions with labels or with the model's classes need a task.
NEEDS_TASK = {"performance": None, "concept": None, "importance": None,
              "estimated": "classification"}  # fmt: skip
TASKS = ("classification", "regression")
_REFERENCE_FORM = (
    "Write model:NAME@ALIAS, data:NAME@VERSION or window:START/END, e.g. "
    "'model:churn@champion' or 'window:2024-06-01T00:00/2024-06-08T00:00'."
)


def check_names(checks: Any, task: str | None) -> tuple[str, ...]:
    """The checks as a tuple, each known and possible with ``task``."""
    if isinstance(checks, str):
        checks = [c for c in checks.replace(" ", "").split(",") if c]
    names = tuple(dict.fromkeys(checks))
    if unknown := [c for c in names if c not in CHECKS]:
        raise InvalidArgument(
            f"Unknown monitor check(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(CHECKS)}."
        )
    for name in names:
        if name in NEEDS_TASK and task is None:
            raise InvalidArgument(
                f"Check {name!r} compares predictions with labels; give the monitor a task "
                "(classification or regression)."
            )
        wanted = NEEDS_TASK.get(name)
        if wanted is not None and task != wanted:
            raise InvalidArgument(
                f"Check {name!r} estimates a binary classifier's performance from its "
                f"probabilities; it needs task {wanted!r}, not {task!r}."
            )
    return names


@dataclass(frozen=True)
class MonitorSpec:
    """What a monitor watches and how.

    Args:
        name: the monitor's name: 1 to 250 letters, digits, _ . and -.
        deployment: the deployment whose predictions are checked.
        reference: ``model:NAME@ALIAS``, ``data:NAME@VERSION`` or ``window:START/END``.
        window: a duration (``"15m"``, ``"1h"``, ``"1d"``) or a count of rows.
        task: ``"classification"``, ``"regression"`` or None (no performance metrics).
        rules: alert rules (see ``ferryml.monitoring.alerts.parse_rule``).
        channels: the alerts' channels in their ``ferry.yaml`` forms; default the log.
        checks: which of ``drift``, ``performance``, ``concept``, ``estimated`` and
            ``importance`` run on each window (a list or comma-separated text).

    Raises:
        InvalidArgument: a field is malformed.
    """

    name: str
    deployment: str
    reference: str
    window: str | int = "1h"
    task: str | None = None
    rules: Sequence[str | Mapping[str, Any]] = ()
    channels: Sequence[Any] = field(default_factory=tuple)
    checks: Sequence[str] | str = DEFAULT_CHECKS

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "channels", tuple(self.channels))
        check_name(self.name, "Monitor", "churn-watch")
        for channel in self.channels:
            _no_secret_in_clear(channel)
        if not isinstance(self.deployment, str) or not self.deployment.strip():
            raise InvalidArgument(
                f"Monitor deployment {self.deployment!r:.300} must be a deployment's name."
            )
        _reference_parts(self.reference)
        _window_args(self.window)
        if self.task is not None and self.task not in TASKS:
            raise InvalidArgument(
                f"Task {self.task!r} is unknown; use classification, regression or none."
            )
        checks = self.checks
        if self.task is None and checks == DEFAULT_CHECKS:
            checks = ("drift",)  # performance needs a task
        object.__setattr__(self, "checks", check_names(checks, self.task))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deployment": self.deployment,
            "reference": self.reference,
            "window": self.window,
            "task": self.task,
            "rules": [r if isinstance(r, str) else dict(r) for r in self.rules],
            "channels": list(self.channels),
            "checks": list(self.checks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _no_secret_in_clear(channel: Any) -> None:
    """A monitor's spec is stored, so its channels may name the variables that hold their
    secrets (``url_env``, ``password_env`` or ``${VAR}`` inside the value), never hold
    them: an email password, a Slack URL (its path is the secret), or a URL carrying a
    password or a query string."""
    if not isinstance(channel, Mapping) or len(channel) != 1:
        return  # not a channel: parse_channel says what is wrong with it
    ((kind, body),) = channel.items()
    fields = body if isinstance(body, Mapping) else {"url": body}
    if kind == "email" and isinstance(fields.get("password"), str):
        clear = "${" not in fields["password"]
        what, hint = "its SMTP password", "password_env: VARIABLE"
    elif kind in ("webhook", "slack") and isinstance(fields.get("url"), str):
        url = fields["url"]
        parts = urllib.parse.urlsplit(url)
        clear = "${" not in url and (kind == "slack" or bool(parts.password or parts.query))
        what, hint = "a secret in its URL", "url_env: VARIABLE, or ${VARIABLE} inside the URL"
    else:
        return
    if clear:
        raise InvalidArgument(
            f"The monitor's {kind} channel holds {what} in clear, which the store would keep: "
            f"keep it in an environment variable and name it ({hint})."
        )


def _reference_parts(reference: Any) -> tuple[str, str]:
    kind, sep, rest = reference.partition(":") if isinstance(reference, str) else ("", "", "")
    if not sep or kind not in ("model", "data", "window") or not rest.strip():
        raise InvalidArgument(
            f"Monitor reference {reference!r:.300} is not understood. {_REFERENCE_FORM}"
        )
    if kind == "window":
        start, slash, end = rest.partition("/")
        if not slash:
            raise InvalidArgument(
                f"Monitor reference {reference!r} has no end time. {_REFERENCE_FORM}"
            )
        import pandas as pd  # only here: the team server checks specs without it

        try:
            since, until = _utc(pd.Timestamp(start)), _utc(pd.Timestamp(end))
        except ValueError as e:
            raise InvalidArgument(
                f"Monitor reference {reference!r} holds a time that is not ISO. {_REFERENCE_FORM}"
            ) from e
        if not since < until:
            raise InvalidArgument(
                f"Monitor reference {reference!r} ends before it starts. {_REFERENCE_FORM}"
            )
    return kind, rest


def _window_args(window: Any) -> tuple[str | None, int | None]:
    if isinstance(window, int) and not isinstance(window, bool):
        if window < 1:
            raise InvalidArgument(f"A monitor window of {window} rows must hold at least 1 row.")
        return None, window
    try:  # text is a duration, read as everywhere else; a number is a count of rows
        seconds = parse_duration(window) if isinstance(window, str) else 0.0
    except InvalidArgument:
        seconds = 0.0
    if seconds < 1 or not seconds.is_integer():
        raise InvalidArgument(
            f"Monitor window {window!r:.100} is not a duration of whole seconds or a count of "
            "rows; write e.g. '15m', '1h', '1d' or 1000."
        )
    return f"{int(seconds)}s", None


def _utc(ts: Any) -> Any:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
