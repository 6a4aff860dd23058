"""Prometheus metrics of one server: requests, latency, rows, batch sizes, errors, per
model version and route."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "Rows per micro-batch.",
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

        self.monitor = Gauge(
            "ferry_monitor_metric",
            "The latest window's result of each "
            "monitor of this endpoint (drift share, performance, ...).",
            ("monitor", "metric"),
            registry=self.registry,
        )
        self._monitors_read = 0.0

    def refresh_monitors(
        self, read: Callable[[], dict[str, dict[str, float]]], every: float = 10.0
    ) -> None:
        """Update the monitor gauges from ``read()``, at most once per ``every`` seconds."""
        now = time.monotonic()
        if now - self._monitors_read < every:
            return
        self._monitors_read = now
        for monitor, metrics in read().items():
            for metric, value in metrics.items():
                self.monitor.labels(monitor, metric).set(value)

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

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch.observe(rows)

    def error(self, route: str, model: str, status: int) -> None:
        self.errors.labels(route, model, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
