"""Alerts: rules over a monitor's window metrics, and their delivery to channels.

A rule names a metric, a comparison, a threshold and how many consecutive windows must
breach it: ``drift_share > 0.3 for 2 windows``, ``accuracy < 0.85``,
``estimated_auc dropped by 0.05``. ``AlertManager.evaluate`` is called once per window
with that window's metrics; per (monitor, rule) it keeps, in the store, how many windows
in a row breached the rule, so a restarted monitor carries on where it stopped.

- An alert **fires** when the count reaches ``windows``; it fires once per continuous
  breach, not once per window.
- It **resolves** (a "resolved" alert is recorded and sent) at the first window that no
  longer breaches.
- After an alert fires, the same rule fires no other alert for the same monitor until
  ``cooldown_s`` has passed, measured on the windows' clock (``window_end``), so that
  replaying old windows behaves as the live monitor did; a breach that outlasts the
  cool-down fires then.
- ``dropped_by`` and ``rose_by`` compare the value with a reference: the window's own
  ``<metric>_baseline`` metric when it has one (e.g. the reference data's value), else the
  metric's value in the first window this rule saw for the monitor. The rule breaches
  when the value is at least ``threshold`` below (``dropped_by``) or above (``rose_by``)
  the reference.
- A window without the rule's metric (or with NaN) leaves the rule's state as it was.
- Windows are counted in order: a window ending no later than the last one counted for a
  rule is ignored, so evaluating the same window twice (say, after a crash) counts once.

Each alert goes to the rule's channels (all channels when the rule names none), each
tried up to ``Retry.attempts`` times with exponential backoff, in the background: a pass
waits for its deliveries at most ``wait_s`` (2 s) and a dead channel never holds it.
Every delivery's outcome is recorded once known; a channel that keeps failing is recorded
as failed, and ``evaluate`` never raises because of a channel. The channels themselves
are in ``ferryml.monitoring.channels``.

Example:
    >>> manager = AlertManager(
    ...     settings,
    ...     ["drift_share > 0.3 for 2 windows", {"metric": "accuracy", "op": "<",
    ...      "threshold": 0.85, "channels": ["ops"]}],
    ...     {"ops": {"slack": "https://hooks.slack.com/services/T000/B000/XXXX"},
    ...      "log": "log"},
    ... )
    >>> fired = manager.evaluate("churn", start, end, {"drift_share": 0.42})

In ``ferry.yaml``::

    monitoring:
      alerts:
        channels:
          ops: {slack: "https://hooks.slack.com/services/..."}
          oncall: {email: {host: smtp.example.com, port: 587, starttls: true,
                           sender: ferry@example.com, to: [oncall@example.com],
                           username: ferry, password_env: SMTP_PASSWORD}}
        rules:
          - drift_share > 0.3 for 2 windows
          - {name: accuracy, metric: accuracy, op: "<", threshold: 0.85, cooldown: 6h,
             channels: [oncall]}
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import Any

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.monitoring._delivery import Deliverer
from ferryml.monitoring.channels import (
    Channel,
    _is_number,
    _iso,
    parse_channels,
)
from ferryml.monitoring.rules import _RELATIVE, OPS, Rule, parse_rule
from ferryml.store.factory import open_alert_store, open_monitor_store
from ferryml.store.loop import Alert, AlertState, AlertStore, Delivery

__all__ = [
    "OPS",
    "Alert",
    "AlertManager",
    "Delivery",
    "Retry",
    "Rule",
    "list_alerts",
    "parse_rule",
]

log = logging.getLogger("ferryml.alerts")

# -- the manager ------------------------------------------------------------------------


def _checked(alerts: Any) -> dict[str, Any]:
    """The ``rules``/``channels`` mapping of a checked ``AlertsConfig`` (None: no section)."""
    if alerts is None:
        return {}
    rules = []
    for rule in alerts.rules:
        fields = rule.model_dump(exclude_none=True)
        fields["channels"] = list(rule.channels)
        rules.append(fields)
    if alerts.channels is None:
        return {"rules": rules}
    channels: dict[str, Any] = {}
    for name, spec in alerts.channels.items():
        body = getattr(spec, spec.kind, None)
        channels[name] = "log" if body is None else {spec.kind: body.model_dump(exclude_none=True)}
    return {"rules": rules, "channels": channels}


@dataclass(frozen=True)
class Retry:
    """How a failing channel is retried: up to ``attempts`` tries, waiting
    ``base_delay_s``, then twice that, and so on, at most ``max_delay_s``, in between."""

    attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise InvalidArgument(f"Retry attempts must be a whole number, not {self.attempts!r}.")
        if self.attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise InvalidArgument(
                f"Retry needs attempts >= 1 and delays >= 0; got {self}, e.g. "
                "Retry(attempts=3, base_delay_s=1.0)."
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s))


Window = dt.datetime | int | float


class AlertManager:
    """Evaluates rules over each window's metrics, records alerts and delivers them.

    Args:
        settings: where the store is (opened on first use; the constructor does no I/O).
        rules: ``Rule`` objects, or their text or mapping (see ``parse_rule``).
        channels: channels by name, objects or their ``ferry.yaml`` form (see
            ``ferryml.monitoring.channels.parse_channel``); by default, the log.
        retry: how failing channels are retried.
        wait_s: how long ``evaluate`` waits for its deliveries before returning; those
            still under way carry on in the background and are recorded when done.

    Raises:
        InvalidArgument: a rule is malformed, two rules share a name, or a rule names a
            channel that is not given.
    """

    def __init__(
        self,
        settings: Settings,
        rules: Sequence[Rule | str | Mapping[str, Any]],
        channels: Mapping[str, Channel | str | Mapping[str, Any]] | None = None,
        *,
        retry: Retry | None = None,
        wait_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.rules = tuple(r if isinstance(r, Rule) else parse_rule(r) for r in rules)
        self.channels = parse_channels(channels if channels is not None else {"log": "log"})
        self.retry = retry or Retry()
        self.wait_s = wait_s
        self._store: AlertStore | None = None
        self._deliverer = Deliverer(
            self.channels, self.retry, lambda alert, d: self.store.record_delivery(alert, d)
        )
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidArgument(
                f"Two alert rules are named {twice[0]!r}; give each a name of its own."
            )
        for rule in self.rules:
            missing = [c for c in rule.channels if c not in self.channels]
            if missing:
                raise InvalidArgument(
                    f"Alert rule {rule.name!r} sends to channel {missing[0]!r}, which is not "
                    f"configured; the channels are: {', '.join(self.channels) or 'none'}."
                )

    @classmethod
    def from_config(
        cls,
        settings: Settings,
        config: Mapping[str, Any] | None = None,
        *,
        retry: Retry | None = None,
    ) -> AlertManager:
        """A manager from ``{rules: [...], channels: {...}}``: by default the
        ``monitoring.alerts`` section of the project's ``ferry.yaml``.

        Raises:
            InvalidArgument: the section is malformed.
        """
        if config is None:
            from ferryml.config import read_config

            monitoring = read_config(settings.root).monitoring
            config = _checked(monitoring.alerts if monitoring else None)
        if not isinstance(config, Mapping) or set(config) - {"rules", "channels"}:
            raise InvalidArgument(
                f"The alerts settings {config!r} must be a mapping with keys rules and "
                "channels, e.g. {rules: ['accuracy < 0.85'], channels: {ops: 'log'}}."
            )
        rules = config.get("rules") or []
        if isinstance(rules, (str, Mapping)):
            rules = [rules]
        return cls(settings, rules, config.get("channels"), retry=retry)

    @property
    def store(self) -> AlertStore:
        if self._store is None:
            self._store = open_alert_store(self.settings)
        return self._store

    def close(self) -> None:
        """Close the store once the deliveries still under way are recorded."""
        self._deliverer.close(self._close_store)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the deliveries still under way, at most ``timeout`` seconds; True if
        every one has finished (and is recorded)."""
        return self._deliverer.wait(timeout)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> AlertManager:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def evaluate(
        self,
        monitor: str,
        window_start: Window,
        window_end: Window,
        metrics: Mapping[str, float],
    ) -> list[Alert]:
        """Count this window against every rule; record and deliver the alerts that fire
        or resolve.

        Args:
            monitor: the monitor's name.
            window_start, window_end: the window, as datetimes (naive ones read as UTC) or
                ms since the epoch.
            metrics: the window's metrics; ``<metric>_baseline`` gives the reference of a
                ``dropped_by``/``rose_by`` rule.

        Returns:
            The alerts fired or resolved by this window, with each channel's outcome.

        Raises:
            InvalidArgument: the monitor's name is empty or the window is malformed.
            StoreUnavailable: the store cannot be reached. A failing channel never raises.
        """
        if not isinstance(monitor, str) or not monitor.strip() or len(monitor) > 250:
            raise InvalidArgument(
                f"Monitor name {monitor!r} must be non-empty text of at most 250 characters."
            )
        start, end = _ms(window_start, "window_start"), _ms(window_end, "window_end")
        if end < start:
            raise InvalidArgument(
                f"The window ends ({_iso(end)}) before it starts ({_iso(start)}); "
                "pass window_start before window_end."
            )
        window = _Window(monitor, start, end, _now_ms())
        recorded: list[Alert] = []
        for rule in self.rules:
            value = _value(metrics.get(rule.metric))
            if value is None:
                continue  # no information about this rule in this window
            baseline = _value(metrics.get(f"{rule.metric}_baseline"))
            step = functools.partial(_step, rule, window, value, baseline)
            alert = self.store.transition(monitor, rule.name, step)
            if alert is not None:
                recorded.append(alert)
        return self._deliver(recorded)

    def send_test(self, channel: str) -> Delivery:
        """Send a made-up alert (not recorded) to one channel, with retries.

        Raises:
            NotFound: no channel has this name.
        """
        if channel not in self.channels:
            raise NotFound(
                f"Alert channel {channel!r} is not configured; the channels are: "
                f"{', '.join(self.channels) or 'none'} (ferry.yaml, monitoring.alerts.channels)."
            )
        now, text = _now_ms(), f"[TEST] A test alert from ferryml to channel {channel!r}."
        alert = Alert(
            0, now, "ferry-alerts-test", "test", "test", ">", 1, 0, None, "fired", text, now, now
        )
        return self._deliverer.attempt(channel, alert, warn=False)  # the caller reports it

    def _deliver(self, alerts: list[Alert]) -> list[Alert]:
        by_rule = {r.name: r for r in self.rules}
        jobs = [
            (alert, self._deliverer.submit(alert, name))
            for alert in alerts
            for name in (by_rule[alert.rule].channels or tuple(self.channels))
        ]
        if not jobs:
            return alerts
        # Channels are tried side by side and the pass waits for them only so long.
        wait_for([future for _, future in jobs], self.wait_s)
        sent: dict[int, list[Delivery]] = {a.id: [] for a in alerts}
        for alert, future in jobs:
            if future.done():
                sent[alert.id].append(future.result())
        return [dataclasses.replace(a, deliveries=tuple(sent[a.id])) for a in alerts]


def list_alerts(
    settings: Settings, *, monitor: str | None = None, rule: str | None = None, limit: int = 100
) -> list[Alert]:
    """Recorded alerts, newest first, with each channel's outcome.

    Raises:
        InvalidArgument: ``limit`` is not positive.
        NotFound: ``monitor`` names no monitor and no alert.
        StoreUnavailable: the store cannot be reached.
    """
    store = open_alert_store(settings)
    try:
        found = store.list_alerts(monitor=monitor, rule=rule, limit=limit)
        if not found and monitor is not None:  # a typo would read as "all quiet"
            monitors = open_monitor_store(settings, sharing=store)
            monitors.get(monitor)  # NotFound, with where to look
        return found
    finally:
        store.close()


@dataclass(frozen=True)
class _Window:
    monitor: str
    start: int
    end: int
    now: int


def _step(
    rule: Rule, window: _Window, value: float, baseline: float | None, state: AlertState
) -> tuple[AlertState, Alert | None]:
    """The rule's next state after one window, and the alert it fires or resolves."""
    if state.last_window_end is not None and window.end <= state.last_window_end:
        return state, None  # counted already
    seen = dataclasses.replace(state, last_window_end=window.end)
    reference = baseline if baseline is not None else state.reference
    if rule.op in _RELATIVE and reference is None:
        return dataclasses.replace(seen, reference=value), None  # the first window: the reference
    relative = reference if rule.op in _RELATIVE else None
    if not rule.breached(value, relative):
        calm = dataclasses.replace(seen, consecutive=0, firing=False)
        if not state.firing:
            return calm, None
        return calm, _alert(rule, window, value, relative, "resolved")
    counted = dataclasses.replace(seen, consecutive=state.consecutive + 1)
    if state.firing or counted.consecutive < rule.windows:
        return counted, None
    cooling = (
        state.last_fired is not None and window.end - state.last_fired < rule.cooldown_s * 1000
    )
    if cooling:
        return counted, None
    fired = dataclasses.replace(counted, firing=True, last_fired=window.end)
    return fired, _alert(rule, window, value, relative, "fired")


def _alert(rule: Rule, window: _Window, value: float, reference: float | None, state: str) -> Alert:
    label = rule.text if rule.name == rule.text else f"{rule.name} ({rule.text})"
    detail = f"{rule.metric} = {value:.6g}"
    if reference is not None:
        detail += f", {value - reference:+.6g} from {reference:.6g}"
    span = f"{_iso(window.start)} to {_iso(window.end)}"
    return Alert(
        id=0,  # the store assigns it
        time=window.now,
        monitor=window.monitor,
        rule=rule.name,
        metric=rule.metric,
        op=rule.op,
        value=value,
        threshold=rule.threshold,
        reference=reference,
        state=state,
        message=f"[{state.upper()}] {window.monitor}: {label}; {detail} in window {span}.",
        window_start=window.start,
        window_end=window.end,
    )


# -- small helpers ----------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms(value: Any, name: str) -> int:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    if _is_number(value) and math.isfinite(value):
        return int(value)
    raise InvalidArgument(
        f"{name} {value!r} must be a datetime or ms since the epoch, "
        "e.g. datetime(2024, 6, 1, tzinfo=UTC)."
    )


def _value(value: Any) -> float | None:
    if not _is_number(value):
        try:
            value = float(value)  # numpy scalars and the like
        except (TypeError, ValueError):
            return None
    number = float(value)
    return None if math.isnan(number) else number
