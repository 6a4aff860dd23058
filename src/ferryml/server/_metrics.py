"""Prometheus metrics of one server: requests, latency, rows, batch sizes, errors, per
model version and route; each loaded model's memory; the process; and, read from the
store, the monitors' latest windows and the open decisions of the served deployments."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class StoreReadings:
    """What the server reads from the store for its gauges (see ``refresh_store``)."""

    # (deployment, monitor) -> (window end in s since the epoch, window length in s or
    # None, the window's metrics)
    monitors: dict[tuple[str, str], tuple[float, float | None, dict[str, float]]] = field(
        default_factory=dict
    )
    # (deployment, policy, state) -> how many decisions are open in that state
    decisions: dict[tuple[str, str, str], int] = field(default_factory=dict)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu, fds
        labels = ("model", "route", "version", "endpoint")
        self.requests = Counter(
            "ferry_requests_total",
            "Prediction requests.",
            (*labels, "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "ferry_request_seconds",
            "Prediction latency.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter("ferry_rows_total", "Rows predicted.", labels, registry=self.registry)
        self.batch = Histogram(
            "ferry_batch_rows",
            "Rows per micro-batch, by served model name and route.",
            ("model", "route"),
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.errors = Counter(
            "ferry_errors_total",
            "Requests answered with an error, by route template and served model name "
            "('unknown' for any other name).",
            ("route", "model", "status"),
            registry=self.registry,
        )
        self.memory = Gauge(
            "ferry_model_memory_bytes",
            "Bytes each loaded model holds (its pickled size, arrays counted from their "
            "buffers), by served model name, route and version.",
            ("model", "route", "version"),
            registry=self.registry,
        )
        self.monitor = Gauge(
            "ferry_monitor_metric",
            "The latest window's result of each monitor of a served deployment (drift "
            "share, performance, ...).",
            ("deployment", "monitor", "metric"),
            registry=self.registry,
        )
        self.monitor_end = Gauge(
            "ferry_monitor_window_end_seconds",
            "When each monitor's latest stored window ended (seconds since the epoch).",
            ("deployment", "monitor"),
            registry=self.registry,
        )
        self.monitor_window = Gauge(
            "ferry_monitor_window_seconds",
            "The length of each monitor's windows (monitors of time windows only).",
            ("deployment", "monitor"),
            registry=self.registry,
        )
        self.decisions = Gauge(
            "ferry_decisions_open",
            "Decisions of the served deployments' policies still under way, by state "
            "(e.g. canary, waiting for approval).",
            ("deployment", "policy", "state"),
            registry=self.registry,
        )
        self._store_read = 0.0

    def refresh_store(self, read: Callable[[], StoreReadings], every: float = 10.0) -> None:
        """Update the store's gauges from ``read()``, at most once per ``every`` seconds."""
        now = time.monotonic()
        if now - self._store_read < every:
            return
        self._store_read = now
        found = read()
        for gauge in (self.monitor, self.monitor_end, self.monitor_window, self.decisions):
            gauge.clear()  # a removed monitor or an ended decision leaves no stale series
        for (deployment, monitor), (end, length, metrics) in found.monitors.items():
            self.monitor_end.labels(deployment, monitor).set(end)
            if length is not None:
                self.monitor_window.labels(deployment, monitor).set(length)
            for metric, value in metrics.items():
                self.monitor.labels(deployment, monitor, metric).set(value)
        for (deployment, policy, state), count in found.decisions.items():
            self.decisions.labels(deployment, policy, state).set(count)

    def loaded_models(self, models: Iterable[tuple[str, str, int, int]]) -> None:
        """Set the memory gauge to exactly ``models``: (served name, route, version,
        bytes) of every model loaded now."""
        self.memory.clear()
        for name, route, version, size in models:
            self.memory.labels(name, route, str(version)).set(size)

    def observe(
        self,
        model: str,
        route: str,
        version: int,
        endpoint: str,
        ok: bool,
        seconds: float,
        rows: int,
    ) -> None:
        labels = (model, route, str(version), endpoint)
        self.requests.labels(*labels, "ok" if ok else "error").inc()
        self.latency.labels(*labels).observe(seconds)
        if ok:
            self.rows.labels(*labels).inc(rows)

    def batch_observer(self, model: str, route: str) -> Callable[[int, float], None]:
        """The ``on_batch`` of one route's micro-batcher."""
        child: Any = self.batch.labels(model, route)

        def observe(rows: int, seconds: float) -> None:
            child.observe(rows)

        return observe

    def error(self, route: str, model: str, status: int) -> None:
        self.errors.labels(route, model, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
