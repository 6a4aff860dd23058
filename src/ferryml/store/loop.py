"""The closed loop's records and store interfaces: monitors and their windows, alerts,
prediction partitions and feedback, policies' watermarks and the agents' lease, and
decisions. Each interface has a SQL implementation (``sql_monitors``, ``sql_alerts``,
``sql_predictions``, ``sql_automation``) and an HTTP one (``http_loop``); the factory
picks one by the store's URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Alert",
    "AlertState",
    "AlertStore",
    "AutomationStore",
    "DecisionEvent",
    "DecisionRecord",
    "DecisionStore",
    "Delivery",
    "Feedback",
    "MonitorResult",
    "MonitorStore",
    "PolicyStore",
    "PredictionPartition",
    "PredictionStore",
    "Step",
]


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorResult:
    """What a monitor found in one window; bounds in ms since the epoch."""

    monitor: str
    window_start: int
    window_end: int
    metrics: dict[str, float]
    drift: dict[str, Any]
    created: int


@dataclass(frozen=True)
class Delivery:
    """What became of sending one alert to one channel.

    Attributes:
        channel: the channel's name.
        attempts: how many times it was tried.
        ok: whether the last attempt succeeded.
        error: the last attempt's error, when it failed.
        time: when the outcome was recorded, ms since the epoch.
    """

    channel: str
    attempts: int
    ok: bool
    error: str | None
    time: int


@dataclass(frozen=True)
class Alert:
    """An alert a rule fired (``state`` "fired") or resolved ("resolved").

    Times are ms since the epoch: ``time`` when it was recorded, ``window_start`` and
    ``window_end`` the monitor's window. ``reference`` is what a ``dropped_by``/``rose_by``
    rule compared the value with. ``deliveries`` holds each channel's outcome, once known.
    """

    id: int
    time: int
    monitor: str
    rule: str
    metric: str
    op: str
    value: float
    threshold: float
    reference: float | None
    state: str
    message: str
    window_start: int
    window_end: int
    deliveries: tuple[Delivery, ...] = ()


@dataclass(frozen=True)
class AlertState:
    """Where a rule stands for a monitor.

    Attributes:
        consecutive: how many windows in a row breached the rule.
        firing: whether an alert fired and has not resolved yet.
        last_fired: ``window_end`` of the last alert fired, for the cool-down.
        reference: the metric's first value, for ``dropped_by``/``rose_by`` rules.
        last_window_end: the newest window counted, so a window is never counted twice.
    """

    monitor: str
    rule: str
    consecutive: int = 0
    firing: bool = False
    last_fired: int | None = None
    reference: float | None = None
    last_window_end: int | None = None


Step = Callable[[AlertState], tuple[AlertState, Alert | None]]


@dataclass(frozen=True)
class PredictionPartition:
    """One Parquet blob of logged predictions of one deployment.

    Attributes:
        digest: the blob in the artifact store.
        deployment: the deployment whose predictions it holds.
        rows: how many predictions it holds.
        min_time, max_time: ms since the epoch, bounding the rows' times (inclusive).
        min_id, max_id: the smallest and largest prediction id in it (code point order).
        creation_time: when it was written, ms since the epoch.
    """

    digest: str
    deployment: str
    rows: int
    min_time: int
    max_time: int
    min_id: str
    max_id: str
    creation_time: int = 0


@dataclass(frozen=True)
class Feedback:
    """The true label of a logged prediction.

    Attributes:
        prediction_id: the prediction it labels.
        deployment: the prediction's deployment.
        prediction_time: the prediction's time, ms since the epoch.
        label: the label as JSON text.
        time: when the label was recorded, ms since the epoch.
        user: who gave it (through a team server, the token's user).
    """

    prediction_id: str
    deployment: str
    prediction_time: int
    label: str
    time: int
    user: str = ""


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    policy: str
    deployment: str
    state: str
    outcome: str | None
    context: dict[str, Any]
    created: int
    updated: int


@dataclass(frozen=True)
class DecisionEvent:
    decision_id: int
    seq: int
    time: int
    kind: str
    message: str
    details: dict[str, Any]


Event = tuple[str, str, Mapping[str, Any]]  # kind, message, details


# -- interfaces ---------------------------------------------------------------------------


class MonitorStore(Protocol):
    """Monitors' specs by name, and one result per window checked."""

    def create(self, name: str, spec: dict[str, Any]) -> None: ...

    def remove(self, name: str) -> int:
        """Delete the monitor and its windows; how many windows went. Raises NotFound."""
        ...

    def get(self, name: str) -> dict[str, Any]: ...

    def list_monitors(self) -> list[tuple[str, dict[str, Any]]]: ...

    def last_window(self, name: str) -> tuple[int, int] | None: ...

    def add_result(
        self,
        name: str,
        window_start: int,
        window_end: int,
        metrics: dict[str, float],
        drift: dict[str, Any],
    ) -> bool:
        """Store a window's result; False (nothing written) when it is stored already."""
        ...

    def list_results(self, name: str, *, ended_after: int | None = None) -> list[MonitorResult]: ...

    def remove_results(self, name: str, *, ended_after: int) -> int:
        """Delete the windows ending after ``ended_after`` ms, to check them again; how many
        went. Raises NotFound."""
        ...

    def close(self) -> None: ...


class AlertStore(Protocol):
    """Alerts fired and resolved, their deliveries, and each (monitor, rule)'s state."""

    def transition(self, monitor: str, rule: str, step: Step) -> Alert | None:
        """Apply the pure ``step`` to the rule's state atomically (it may run more than
        once); record the state and the alert it returns. Returns the alert, with its id."""
        ...

    def get_state(self, monitor: str, rule: str) -> AlertState: ...

    def record_delivery(self, alert_id: int, delivery: Delivery) -> None: ...

    def get_alert(self, alert_id: int) -> Alert: ...

    def list_alerts(
        self, *, monitor: str | None = None, rule: str | None = None, limit: int = 100
    ) -> list[Alert]: ...

    def close(self) -> None: ...


class PredictionStore(Protocol):
    """The index of the prediction log's Parquet partitions, and feedback labels."""

    def create_partitions(self, partitions: Sequence[PredictionPartition]) -> None: ...

    def list_partitions(
        self, deployment: str, *, since: int | None = None, until: int | None = None
    ) -> list[PredictionPartition]: ...

    def list_deployments(self) -> list[str]: ...

    def search_partitions_by_id(self, lowest: str, highest: str) -> list[PredictionPartition]: ...

    def replace_partitions(self, old: Sequence[str], new: Sequence[PredictionPartition]) -> bool:
        """Swap the partitions of digests ``old`` for ``new`` in one transaction, so a
        reader lists either; False, and nothing changed, if one of ``old`` is no longer
        indexed (another compaction took it)."""
        ...

    def upsert_feedback(self, rows: Sequence[Feedback], *, user: str) -> set[str]:
        """Store labels given by ``user`` (a team server records its token's user
        instead); the ids that had a label before."""
        ...

    def list_feedback(
        self,
        deployment: str,
        *,
        since: int | None = None,
        until: int | None = None,
        recorded_after: int | None = None,
    ) -> list[Feedback]: ...

    def close(self) -> None: ...


class PolicyStore(Protocol):
    """Each policy's watermarks, and the lease that lets one agent act at a time."""

    def policy_state(self, policy: str) -> dict[str, Any]: ...

    def set_policy_state(self, policy: str, state: Mapping[str, Any]) -> None: ...

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool: ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def lease_holder(self, name: str) -> tuple[str, int] | None: ...

    def close(self) -> None: ...


class DecisionStore(Protocol):
    """Decisions and their audit trail; a person approves or rejects one that waits."""

    def create_decision(
        self, policy: str, deployment: str, state: str, context: Mapping[str, Any], event: Event
    ) -> int: ...

    def advance(
        self,
        decision_id: int,
        expected_state: str,
        state: str,
        context: Mapping[str, Any],
        event: Event,
        *,
        outcome: str | None = None,
        expected_updated: int | None = None,
    ) -> bool:
        """Move a decision from ``expected_state`` to ``state`` with its event; False when
        another writer moved it first."""
        ...

    def get_decision(self, decision_id: int) -> DecisionRecord: ...

    def list_decisions(
        self, *, policy: str | None = None, open_only: bool = False, limit: int | None = None
    ) -> list[DecisionRecord]: ...

    def count_since(self, policy: str, since_ms: int) -> int: ...

    def events(self, decision_id: int) -> list[DecisionEvent]: ...

    def approve(self, decision_id: int, *, user: str, reason: str = "") -> DecisionRecord:
        """Let a decision waiting for approval roll out; ``user`` is who approved (a team
        server records its token's user instead). Raises NotFound, Conflict."""
        ...

    def reject(self, decision_id: int, *, user: str, reason: str = "") -> DecisionRecord:
        """End a decision waiting for approval. Raises NotFound, Conflict."""
        ...

    def close(self) -> None: ...


class AutomationStore(PolicyStore, DecisionStore, Protocol):
    """What the agent works with: policies' state, the lease and decisions."""
