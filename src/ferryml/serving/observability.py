"""Ready-made observability for the model server's ``/metrics``: a Grafana dashboard and
Prometheus alerting rules (``ferry deploy grafana``, ``ferry deploy prometheus-rules``).

Every query names only metrics the server exports (a test compares them with a real
scrape); ``model`` is the served name (a deployment's, or a model's served by name)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferryml.errors import InvalidArgument

__all__ = [
    "AlertThresholds",
    "dashboard_json",
    "grafana_dashboard",
    "prometheus_rules",
    "rules_yaml",
    "write_text",
]

_RATE = "$__rate_interval"
_BY = "model, route, version"
_SERVED = 'model=~"$model"'


@dataclass(frozen=True)
class AlertThresholds:
    """When the alerting rules fire.

    Args:
        error_rate: share of prediction requests that fail (0-1).
        latency_p99: seconds; the 99th percentile of prediction latency.
        drift_share: share of a monitor's features that drifted (0-1).
        stale_windows: a monitor is stale when its newest window ended more than this many
            window lengths ago (monitors of time windows).
        duration: how long a condition holds before its alert fires (Prometheus ``for``).
    """

    error_rate: float = 0.05
    latency_p99: float = 0.5
    drift_share: float = 0.3
    stale_windows: float = 3.0
    duration: str = "5m"

    def check(self) -> None:
        for name, value, upper in (
            ("error rate", self.error_rate, 1.0),
            ("drift share", self.drift_share, 1.0),
            ("p99 latency", self.latency_p99, math.inf),
            ("stale windows", self.stale_windows, math.inf),
        ):
            if not (math.isfinite(value) and 0 <= value <= upper) or (
                upper == math.inf and value <= 0
            ):
                bound = "between 0 and 1" if upper == 1.0 else "a positive number"
                raise InvalidArgument(f"The {name} threshold must be {bound}; got {value!r}.")
        self.for_seconds()

    def for_seconds(self) -> int:
        """``duration`` in whole seconds."""
        from ferryml._duration import parse_duration

        try:
            seconds = parse_duration(self.duration)
        except InvalidArgument as e:
            raise InvalidArgument(f"--for {e}") from e
        if not seconds.is_integer():
            raise InvalidArgument(f"--for must be whole seconds; got {self.duration!r}.")
        return int(seconds)


def _prometheus_duration(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def prometheus_rules(thresholds: AlertThresholds | None = None) -> dict[str, Any]:
    """Alerting rules over the server's metrics: prediction errors, server errors, p99
    latency, data drift and a monitor that stopped producing windows."""
    t = thresholds or AlertThresholds()
    t.check()
    duration = _prometheus_duration(t.for_seconds())
    errors = (
        f'sum by ({_BY}) (rate(ferry_requests_total{{status="error"}}[5m]))'
        f" / sum by ({_BY}) (rate(ferry_requests_total[5m]))"
    )
    p99 = f"histogram_quantile(0.99, sum by (le, {_BY}) (rate(ferry_request_seconds_bucket[5m])))"
    rules = [
        _alert(
            "FerryPredictionErrors",
            f"{errors} > {t.error_rate:g}",
            duration,
            "warning",
            "{{ $labels.model }} version {{ $labels.version }} ({{ $labels.route }}) fails "
            "{{ $value | humanizePercentage }} of its predictions",
            f"More than {t.error_rate:.0%} of prediction requests failed over 5 minutes.",
        ),
        _alert(
            "FerryServerErrors",
            'sum by (model, route) (rate(ferry_errors_total{status=~"5.."}[5m])) > 0',
            duration,
            "critical",
            "{{ $labels.model }}: HTTP 5xx answers on {{ $labels.route }}",
            "The model server answered with 5xx errors; see its log.",
        ),
        _alert(
            "FerryHighLatency",
            f"{p99} > {t.latency_p99:g}",
            duration,
            "warning",
            "{{ $labels.model }} version {{ $labels.version }} p99 latency is "
            "{{ $value | humanizeDuration }}",
            f"The 99th percentile of prediction latency is over {t.latency_p99:g} s.",
        ),
        _alert(
            "FerryDataDrift",
            f'ferry_monitor_metric{{metric="drift_share"}} > {t.drift_share:g}',
            duration,
            "warning",
            "{{ $labels.deployment }}: monitor {{ $labels.monitor }} finds "
            "{{ $value | humanizePercentage }} of features drifted",
            f"More than {t.drift_share:.0%} of the monitored features drifted in the latest "
            "window; see `ferry monitor report`.",
        ),
        _alert(
            "FerryMonitorStale",
            "time() - ferry_monitor_window_end_seconds"
            f" > {t.stale_windows:g} * ferry_monitor_window_seconds",
            duration,
            "warning",
            "{{ $labels.deployment }}: monitor {{ $labels.monitor }} has stored no window "
            f"for over {t.stale_windows:g} windows",
            "The monitor's newest window is old: is `ferry monitor run` (or the agent) "
            "scheduled, and are predictions logged?",
        ),
    ]
    return {"groups": [{"name": "ferryml", "rules": rules}]}


def _alert(
    name: str, expr: str, duration: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def grafana_dashboard(title: str = "ferryml") -> dict[str, Any]:
    """A Grafana dashboard (JSON model) of the server's metrics: traffic, latency
    percentiles, errors and batch sizes per served model, route and version; each loaded
    model's memory; the monitors' drift and performance; the decisions under way. It asks
    for a Prometheus data source when imported and filters by served model."""
    rate = f"[{_RATE}]"
    panels = [
        _row("Traffic"),
        _timeseries(
            "Requests per second",
            [f"sum by ({_BY}) (rate(ferry_requests_total{{{_SERVED}}}{rate}))"],
            "reqps",
        ),
        _timeseries(
            "Rows predicted per second",
            [f"sum by ({_BY}) (rate(ferry_rows_total{{{_SERVED}}}{rate}))"],
            "short",
        ),
        _timeseries(
            "Latency percentiles",
            [
                f"histogram_quantile({q}, sum by (le, {_BY}) "
                f"(rate(ferry_request_seconds_bucket{{{_SERVED}}}{rate})))"
                for q in ("0.5", "0.9", "0.99")
            ],
            "s",
            legends=[
                "p50 {{model}} v{{version}} {{route}}",
                "p90 {{model}} v{{version}} {{route}}",
                "p99 {{model}} v{{version}} {{route}}",
            ],
        ),
        _timeseries(
            "Prediction error ratio",
            [
                f'sum by ({_BY}) (rate(ferry_requests_total{{{_SERVED},status="error"}}{rate}))'
                f" / sum by ({_BY}) (rate(ferry_requests_total{{{_SERVED}}}{rate}))"
            ],
            "percentunit",
        ),
        _timeseries(
            "HTTP errors per second (by route template and status)",
            [f"sum by (model, route, status) (rate(ferry_errors_total{rate}))"],
            "reqps",
            legends=["{{model}} {{route}} {{status}}"],
        ),
        _timeseries(
            "Rows per micro-batch (mean and p90)",
            [
                f"sum by (model, route) (rate(ferry_batch_rows_sum{{{_SERVED}}}{rate}))"
                f" / sum by (model, route) (rate(ferry_batch_rows_count{{{_SERVED}}}{rate}))",
                "histogram_quantile(0.9, sum by (le, model, route) "
                f"(rate(ferry_batch_rows_bucket{{{_SERVED}}}{rate})))",
            ],
            "short",
            legends=["mean {{model}} {{route}}", "p90 {{model}} {{route}}"],
        ),
        _row("Models and process"),
        _timeseries(
            "Memory of each loaded model",
            [f"sum by ({_BY}) (ferry_model_memory_bytes{{{_SERVED}}})"],
            "bytes",
        ),
        _timeseries(
            "Server process: resident memory",
            ["process_resident_memory_bytes"],
            "bytes",
            legends=["{{instance}}"],
        ),
        _row("Monitors and decisions"),
        _timeseries(
            "Drift share (latest window)",
            ['ferry_monitor_metric{metric="drift_share"}'],
            "percentunit",
            legends=["{{deployment}} {{monitor}}"],
        ),
        _timeseries(
            "Performance (latest window)",
            [
                'ferry_monitor_metric{metric=~"accuracy|precision|recall|f1|roc_auc|mae|rmse'
                '|r2|estimated_.*"}'
            ],
            "short",
            legends=["{{deployment}} {{monitor}} {{metric}}"],
        ),
        _timeseries(
            "Age of each monitor's newest window",
            ["time() - ferry_monitor_window_end_seconds"],
            "s",
            legends=["{{deployment}} {{monitor}}"],
        ),
        _timeseries(
            "Decisions under way (by policy and state)",
            ["sum by (deployment, policy, state) (ferry_decisions_open)"],
            "short",
            legends=["{{deployment}} {{policy}} {{state}}"],
        ),
    ]
    _place(panels)
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "title": title,
        "uid": "ferryml-serving",
        "tags": ["ferryml"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                {
                    "name": "model",
                    "label": "Served model",
                    "type": "query",
                    "datasource": _DATASOURCE,
                    "query": {"query": "label_values(ferry_requests_total, model)"},
                    "definition": "label_values(ferry_requests_total, model)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _timeseries(
    title: str, queries: list[str], unit: str, *, legends: list[str] | None = None
) -> dict[str, Any]:
    legend = legends or ["{{model}} v{{version}} {{route}}"] * len(queries)
    return {
        "type": "timeseries",
        "title": title,
        "datasource": _DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": expr,
                "legendFormat": legend[i],
                "datasource": _DATASOURCE,
            }
            for i, expr in enumerate(queries)
        ],
    }


def _place(panels: list[dict[str, Any]]) -> None:
    """Ids and grid positions: rows full width, panels two a line."""
    y, x = 0, 0
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
        if panel["type"] == "row":
            y += 0 if x == 0 else 8
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y, x = y + 1, 0
            continue
        panel["gridPos"] = {"h": 8, "w": 12, "x": x, "y": y}
        if x == 12:
            y, x = y + 8, 0
        else:
            x = 12


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file renamed into place)."""
    path = path.expanduser()
    if path.is_dir():
        raise InvalidArgument(f"{path} is a folder; give the path of the file to write.")
    if not path.parent.is_dir():
        raise InvalidArgument(f"The folder {path.parent} does not exist; create it first.")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def dashboard_json(title: str = "ferryml") -> str:
    return json.dumps(grafana_dashboard(title), indent=2) + "\n"


def rules_yaml(thresholds: AlertThresholds | None = None) -> str:
    import yaml

    header = (
        "# Prometheus alerting rules for ferryml's model server (ferry deploy prometheus-rules)\n"
    )
    text: str = yaml.safe_dump(prometheus_rules(thresholds), sort_keys=False, width=1000)
    return header + text
