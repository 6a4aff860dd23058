"""Delivering alerts to channels in the background, so a slow or dead channel never holds
the monitor's pass.

Each (alert, channel) delivery runs on a worker thread: up to ``attempts`` tries, each
bounded by the channel's own timeout, with the retry policy's waits between them; its
outcome is then recorded. The pass waits for its deliveries at most ``wait_s`` and carries
on; deliveries still under way finish on their own (the process waits for them at exit,
as ``concurrent.futures`` does), and their outcome is recorded when they do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from ferryml.monitoring.channels import Channel, _reason
from ferryml.store.sql_alerts import Alert, Delivery

__all__ = ["Deliverer", "RetryPolicy"]

log = logging.getLogger("ferryml.alerts")


class RetryPolicy(Protocol):
    @property
    def attempts(self) -> int: ...

    def delay(self, attempt: int) -> float: ...


class Deliverer:
    """Sends alerts to ``channels`` on up to ``workers`` threads; ``record(alert_id,
    delivery)`` stores each outcome and ``closed()`` runs once ``close`` was called and
    every delivery has finished."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        retry: RetryPolicy,
        record: Callable[[int, Delivery], None],
        *,
        workers: int = 8,
    ) -> None:
        self.channels = channels
        self.retry = retry
        self._record = record
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[Delivery]] = set()
        self._lock = threading.Lock()
        self._on_idle: Callable[[], None] | None = None

    def submit(self, alert: Alert, channel: str) -> Future[Delivery]:
        """Start delivering ``alert`` to ``channel``; the future holds the outcome."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, "ferryml-alerts")
            future = self._pool.submit(self._deliver, alert, channel)
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every delivery under way, at most ``timeout`` seconds; True if none is
        left."""
        with self._lock:
            pending = set(self._pending)
        return not wait_for(pending, timeout).not_done

    def attempt(self, name: str, alert: Alert, *, warn: bool = True) -> Delivery:
        """Send ``alert`` to channel ``name`` with retries, here and now; never raises."""
        channel = self.channels[name]
        attempts = self.retry.attempts

        def warned(state: RetryCallState) -> None:
            if not warn:
                return
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "Alert %s to channel %r failed (attempt %d of %d): %s",
                alert.id,
                name,
                state.attempt_number,
                attempts,
                _reason(error),
            )

        retrying = Retrying(
            # a channel's failure, whatever it is, must not stop monitoring
            retry=retry_if_exception_type(Exception),
            stop=stop_after_attempt(attempts),
            wait=lambda state: self.retry.delay(state.attempt_number),
            after=warned,
            reraise=True,
        )
        try:
            retrying(channel.send, alert)
        except Exception as e:  # noqa: BLE001 - every attempt failed: recorded, not raised
            return Delivery(name, attempts, False, _reason(e), _now_ms())
        return Delivery(name, retrying.statistics["attempt_number"], True, None, _now_ms())

    def close(self, closed: Callable[[], None]) -> None:
        """Take no more deliveries; call ``closed`` once those under way have finished."""
        with self._lock:
            pool, self._pool = self._pool, None
            idle = not self._pending
            if not idle:
                self._on_idle = closed
        if pool is not None:
            pool.shutdown(wait=False)
        if idle:
            closed()

    def _deliver(self, alert: Alert, channel: str) -> Delivery:
        delivery = self.attempt(channel, alert)
        try:
            self._record(alert.id, delivery)
        except Exception:  # noqa: BLE001 - on a worker thread: nobody else would see it
            log.exception("Could not record the delivery of alert %s to %r", alert.id, channel)
        return delivery

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
            closed = self._on_idle if not self._pending else None
            if closed is not None:
                self._on_idle = None
        if closed is not None:
            closed()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
