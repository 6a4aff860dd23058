"""The HTML page of a monitor: metrics over time, then the latest window's drift report."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ferryml.monitoring.drift import DriftReport
from ferryml.store.sql_monitors import MonitorResult

_WIDTH, _HEIGHT = 320, 60
_FIRST = ("rows", "drift_share", "n_drifted", "dataset_drift", "prediction_drift")


def render_monitor(
    name: str,
    spec: Mapping[str, Any],
    results: Sequence[MonitorResult],
    latest: DriftReport | None,
) -> str:
    """A self-contained page; the drift report's own page when there is one, with the
    monitor's summary at its top."""
    summary = _summary(name, spec, results)
    if latest is None:
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}"
            f"</title></head><body>{summary}<p>No window checked yet.</p></body></html>"
        )
    page = latest.to_html(title=f"Data drift, latest window of {name}")
    if "<body>" in page:
        return page.replace("<body>", f"<body>{summary}", 1)
    return summary + page


def _summary(name: str, spec: Mapping[str, Any], results: Sequence[MonitorResult]) -> str:
    metrics = [m for m in _FIRST if any(m in r.metrics for r in results)]
    metrics += sorted({m for r in results for m in r.metrics} - set(metrics))
    charts = "".join(
        f"<figure style='display:inline-block;margin:4px'><figcaption>{html.escape(m)}"
        f"</figcaption>{_sparkline([r.metrics.get(m) for r in results])}</figure>"
        for m in metrics
        if m not in ("rows", "dataset_drift", "prediction_drift")
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("start", "end", *metrics))
    rows = "".join(
        "<tr>"
        + f"<td>{_when(r.window_start)}</td><td>{_when(r.window_end)}</td>"
        + "".join(f"<td>{_num(r.metrics.get(m))}</td>" for m in metrics)
        + "</tr>"
        for r in results
    )
    return (
        f"<section class='monitor'><h1>Monitor {html.escape(name)}</h1>"
        f"<p>Deployment {html.escape(str(spec.get('deployment')))}, reference "
        f"{html.escape(str(spec.get('reference')))}, window {html.escape(str(spec.get('window')))}"
        f", {len(results)} window(s).</p>{charts}"
        f"<table class='monitor-windows'><tr>{head}</tr>{rows}</table></section>"
    )


def _sparkline(values: Sequence[float | None]) -> str:
    points = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not points:
        return "<svg width='0' height='0'></svg>"
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = high - low or 1.0
    step = _WIDTH / max(len(values) - 1, 1)
    xy = " ".join(
        f"{i * step:.1f},{_HEIGHT - 4 - (v - low) / span * (_HEIGHT - 8):.1f}" for i, v in points
    )
    dots = "".join(
        f"<circle cx='{x}' r='2.5' cy='{y}'/>" for x, y in (p.split(",") for p in xy.split())
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}' "
        f"viewBox='-4 0 {_WIDTH + 8} {_HEIGHT}'><polyline fill='none' stroke='#1f77b4' "
        f"stroke-width='1.5' points='{xy}'/><g fill='#1f77b4'>{dots}</g></svg>"
    )


def _when(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"
