"""The agent: runs due schedules, every monitor and every policy, pass after pass, and
tops every review queue up with predictions for a person to label.

One agent acts at a time: each pass starts by taking (or renewing) a lease in the metadata
store, and a background thread renews it while a long step (a training pipeline) runs; an
agent that cannot take the lease stands by and tries again next pass. Everything the agent
knows lives in the store -- decisions and their state, each policy's watermarks, monitors'
windows, alerts -- so a restarted agent picks up where the last one stopped.

Example:
    >>> agent = Agent(Settings.resolve())
    >>> agent.run(interval=10)          # until stopped; or agent.tick() for one pass
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ferryml.automation import decisions as steps
from ferryml.automation.policy import Policy, Trigger, declares_policies, load_policies
from ferryml.config import Settings
from ferryml.errors import (
    FerryError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from ferryml.store.factory import (
    open_alert_store,
    open_automation_store,
    open_monitor_store,
    open_prediction_store,
    open_review_store,
)
from ferryml.store.loop import AutomationStore

__all__ = ["Agent", "Tick"]

log = logging.getLogger("ferryml.agent")
LEASE = "agent"
DAY_MS = 86_400_000


@dataclass
class Tick:
    """What one pass did."""

    active: bool
    holder: str | None = None
    schedules: int = 0
    windows: int = 0
    reviews: int = 0  # predictions added to review queues
    created: list[int] = field(default_factory=list)
    steps: int = 0
    errors: list[str] = field(default_factory=list)


class Agent:
    """Runs schedules, monitors and policies against one store.

    Args:
        settings: the stores, and the project root whose ``ferry.yaml`` holds the policies.
        policies: the policies to run; default those of ``ferry.yaml``, read again each pass.
        lease_seconds: how long a lease lasts without renewal; another agent takes over
            that long after this one died.
        monitors, schedules: whether passes also run the monitors and due schedules.
        clock: the time in seconds, as ``time.time`` gives it; triggers, cool-downs and the
            waits of decisions are measured on it (the lease runs on the database's clock).

    Raises:
        InvalidArgument: ``ferry.yaml``'s policies are wrong (when read at start).
    """

    def __init__(
        self,
        settings: Settings,
        policies: Mapping[str, Policy] | None = None,
        *,
        lease_seconds: float = 30.0,
        monitors: bool = True,
        schedules: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not lease_seconds > 0:
            raise InvalidArgument(f"lease_seconds {lease_seconds} must be positive.")
        self.settings = settings
        self._given = dict(policies) if policies is not None else None
        self.policies = self._given if self._given is not None else load_policies(settings.root)
        self.lease_seconds = lease_seconds
        self.monitors, self.schedules = monitors, schedules
        self.clock = clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._store: AutomationStore | None = None
        self._sources: _Sources | None = None
        self._lost = threading.Event()

    @property
    def store(self) -> AutomationStore:
        if self._store is None:
            self._store = open_automation_store(self.settings)
        return self._store

    @property
    def sources(self) -> _Sources:
        """The stores the triggers read, over the agent's one open connection pool."""
        if self._sources is None:
            self._sources = _Sources(self.settings, self.store)
        return self._sources

    def close(self) -> None:
        if self._store is not None:
            store, self._store, self._sources = self._store, None, None
            try:
                store.release_lease(LEASE, self.holder)
            finally:  # a refused token, or the store away, still closes the connections
                store.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- passes ----------------------------------------------------------------------------

    def run(
        self,
        *,
        interval: float = 10.0,
        stop: threading.Event | None = None,
        on_tick: Callable[[Tick], object] | None = None,
    ) -> None:
        """Pass after pass, ``interval`` seconds apart, until ``stop`` is set; ``on_tick``
        is given what each pass did."""
        if not interval > 0:
            raise InvalidArgument(f"Interval {interval} must be a positive number of seconds.")
        stop = stop or threading.Event()
        while True:
            tick = self.tick()
            if on_tick is not None:
                on_tick(tick)
            if stop.wait(interval):
                return

    def tick(self) -> Tick:
        """One pass: take the lease, or stand by if another agent holds it.

        Raises:
            Unauthenticated, PermissionDenied: a team server refused the agent's token,
                which no later pass would change.
        """
        try:
            if not self.store.acquire_lease(LEASE, self.holder, self.lease_seconds):
                held = self.store.lease_holder(LEASE)
                return Tick(False, held[0] if held else "another agent")
        except (Unauthenticated, PermissionDenied):
            raise
        except (FerryError, SQLAlchemyError) as e:  # the store is away: try next pass
            log.error("could not reach the store: %s", e)
            return Tick(False, None, errors=[f"could not reach the store: {e}"])
        self._lost.clear()
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(done,), daemon=True)
        keeper.start()
        try:
            return self._pass()
        finally:
            done.set()
            keeper.join()

    def _keep_lease(self, done: threading.Event) -> None:

        try:
            store = open_automation_store(self.settings)
        except (FerryError, SQLAlchemyError) as e:
            log.error("cannot renew the lease: %s", e)
            self._lost.set()
            return
        try:
            while not done.wait(self.lease_seconds / 3):
                if not store.acquire_lease(LEASE, self.holder, self.lease_seconds):
                    self._lost.set()
                    return
        except (FerryError, SQLAlchemyError) as e:  # stop acting rather than act unleased
            log.error("lost the lease: %s", e)
            self._lost.set()
        finally:
            store.close()

    def _pass(self) -> Tick:
        tick = Tick(True, self.holder)
        if self._given is None:
            try:
                self.policies = load_policies(self.settings.root)
            except InvalidArgument as e:  # keep acting on the policies last read
                tick.errors.append(str(e))
                log.error("policies not reloaded: %s", e)
        if self.schedules:
            from ferryml.pipelines.schedule import run_scheduler

            tick.schedules = len(run_scheduler(self.settings, once=True))
        if self.monitors:
            tick.windows = self._run_monitors(tick)
            tick.reviews = self._fill_reviews(tick)
        if self._given is None and declares_policies(self.settings.root):
            for decision in self.store.list_decisions(open_only=True):
                if decision.policy not in self.policies:  # removed from ferry.yaml
                    self._guarded(tick, f"decision {decision.id}", self._abandon, decision.id)
        for policy in self.policies.values():
            if self._lost.is_set():
                break
            self._guarded(tick, f"policy {policy.name}", self._run_policy, policy, tick)
        return tick

    def _guarded(self, tick: Tick, what: str, action: Any, *args: Any) -> None:
        """Run one policy's or decision's work; its failure is reported and the pass goes
        on with the others."""
        try:
            action(*args)
        except Exception as e:  # noqa: BLE001 - one broken policy must not stop the others
            tick.errors.append(f"{what}: {type(e).__name__}: {e}")
            log.error("%s: %s", what, e)

    def _run_monitors(self, tick: Tick) -> int:
        from ferryml.monitoring.monitors import list_monitors, run_monitor

        count = 0
        for spec in list_monitors(self.settings):
            try:
                count += len(run_monitor(self.settings, spec.name))
            except Exception as e:  # noqa: BLE001 - one broken monitor must not stop the others
                tick.errors.append(f"monitor {spec.name}: {e}")
                log.error("monitor %s: %s", spec.name, e)
        return count

    def _fill_reviews(self, tick: Tick) -> int:
        """Top each deployment's review queue up; a deployment with no predictions yet, or
        a queue full already, adds none."""
        from ferryml.monitoring.review import fill_review_queue

        count = 0
        for queue in self.sources.review.list_queues():
            try:
                count += fill_review_queue(
                    queue.deployment, settings=self.settings, store=self.sources.review
                )
            except NotFound:
                continue
            except Exception as e:  # noqa: BLE001 - one broken queue must not stop the others
                tick.errors.append(f"review queue {queue.deployment}: {e}")
                log.error("review queue %s: %s", queue.deployment, e)
        return count

    def _run_policy(self, policy: Policy, tick: Tick) -> None:
        open_ = self.store.list_decisions(policy=policy.name, open_only=True)
        if not open_:
            created = self._check_triggers(policy)
            if created is None:
                return
            tick.created.append(created)
            open_ = [self.store.get_decision(created)]
        for record in open_:
            while not self._lost.is_set() and steps.advance(
                self.store, self.settings, policy, record, clock=self.clock
            ):
                tick.steps += 1
                record = self.store.get_decision(record.id)

    def _abandon(self, decision_id: int) -> None:
        record = self.store.get_decision(decision_id)
        context = dict(record.context)
        why = f"policy {record.policy!r} no longer exists"
        if record.state == "rolling_out":
            steps.take_down(
                self.settings,
                record.deployment,
                context.get("candidate"),
                f"decision {decision_id}: {why}",
            )
        self.store.advance(
            decision_id,
            record.state,
            "done",
            context,
            ("abandoned", f"abandoned: {why}", {}),
            outcome="abandoned",
        )

    # -- triggers --------------------------------------------------------------------------

    def _check_triggers(self, policy: Policy) -> int | None:
        """A new decision when a trigger fired and neither the cool-down nor the daily cap
        holds it back; each trigger's watermark moves past what it saw either way, so one
        cause never starts two retrainings."""
        now = int(self.clock() * 1000)
        state = self.store.policy_state(policy.name)
        fired: list[tuple[Trigger, str, dict[str, Any]]] = []
        for trigger in policy.triggers:
            key = trigger.describe()  # not its position: triggers may be added or reordered
            fresh = key not in state  # a trigger's first pass only sets its watermark
            found = _check(self.sources, policy, trigger, state, key, now)
            if found is not None and not fresh:
                fired.append((trigger, *found))
        self.store.set_policy_state(policy.name, state)
        if not fired:
            return None
        trigger, message, evidence = fired[0]
        last = self.store.list_decisions(policy=policy.name, limit=1)
        if last and now - last[0].updated < policy.cooldown_s * 1000:  # since it ended
            log.info("policy %s: %s, but in cool-down after decision %s", policy.name,
                     message, last[0].id)  # fmt: skip
            return None
        if self.store.count_since(policy.name, now - DAY_MS) >= policy.max_per_day:
            log.warning("policy %s: %s, but it retrained %s times today already", policy.name,
                        message, policy.max_per_day)  # fmt: skip
            return None
        context = {"started": now, "trigger": trigger.describe(), "evidence": evidence}
        return self.store.create_decision(
            policy.name,
            policy.deployment,
            "triggered",
            context,
            ("trigger", message, {"trigger": trigger.describe(), **evidence}),
        )


class _Sources:
    """What triggers read: alerts, monitor windows and feedback labels."""

    def __init__(self, settings: Settings, store: AutomationStore) -> None:
        self.alerts = open_alert_store(settings, sharing=store)
        self.monitors = open_monitor_store(settings, sharing=store)
        self.predictions = open_prediction_store(settings, sharing=store)
        self.review = open_review_store(settings, sharing=store)


def _check(
    sources: _Sources,
    policy: Policy,
    trigger: Trigger,
    state: dict[str, Any],
    key: str,
    now: int,
) -> tuple[str, dict[str, Any]] | None:
    """Whether ``trigger`` fired since its watermark ``state[key]``, which it moves on."""
    if trigger.kind == "alert":
        return _alert(sources, trigger, state, key)
    if trigger.kind == "metric":
        return _metric(sources, trigger, state, key)
    if trigger.kind == "schedule":
        from ferryml.pipelines.schedule import next_occurrence

        since = int(state.get(key, now))
        state[key] = now if next_occurrence(str(trigger.cron), since) <= now else since
        if state[key] == since:
            return None
        return f"schedule {trigger.cron} is due", {"due": since}
    return _labels(sources, policy, trigger, state, key, now)


def _alert(
    sources: _Sources, trigger: Trigger, state: dict[str, Any], key: str
) -> tuple[str, dict[str, Any]] | None:
    alerts = sources.alerts.list_alerts(monitor=trigger.monitor, rule=trigger.rule, limit=100)
    seen = int(state.get(key, 0))
    state[key] = max([seen, *(a.id for a in alerts)])
    new = [a for a in alerts if a.id > seen and a.state == "fired"]
    if not new:
        return None
    alert = new[-1]  # the oldest new one: the first sign
    return f"alert {alert.id}: {alert.message}", {
        "alert": alert.id,
        "monitor": alert.monitor,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
    }


def _metric(
    sources: _Sources, trigger: Trigger, state: dict[str, Any], key: str
) -> tuple[str, dict[str, Any]] | None:
    from ferryml.monitoring.rules import parse_rule

    seen = int(state.get(key, 0))
    state.setdefault(key, seen)  # a first pass before any window still sets the watermark
    new = sources.monitors.list_results(str(trigger.monitor), ended_after=seen)
    if not new:
        return None
    state[key] = new[-1].window_end
    rule = parse_rule(str(trigger.rule))
    value = new[-1].metrics.get(rule.metric)
    if value is None or not rule.breached(float(value)):
        return None
    return f"{trigger.rule} on monitor {trigger.monitor}: {rule.metric} = {value:.4g}", {
        "monitor": trigger.monitor,
        "window_start": new[-1].window_start,
        "window_end": new[-1].window_end,
        rule.metric: value,
    }


def _labels(
    sources: _Sources,
    policy: Policy,
    trigger: Trigger,
    state: dict[str, Any],
    key: str,
    now: int,
) -> tuple[str, dict[str, Any]] | None:
    since = int(state.get(key, now))
    labels = sources.predictions.list_feedback(policy.deployment, recorded_after=since)
    if len(labels) < int(trigger.count or 0):
        state.setdefault(key, since)
        return None
    state[key] = max(f.time for f in labels)
    first = min(f.prediction_time for f in labels)  # feedback_since: trigger starts here
    return f"{len(labels)} new labels since the trigger last fired", {
        "labels": len(labels),
        "window_start": first,
    }
