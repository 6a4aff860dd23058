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
_NOT_CHARTED = ("rows", "dataset_drift", "prediction_drift", "concept_drift")
_REALISED, _ESTIMATED = "#1f77b4", "#ff7f0e"
_LAST_WINDOWS = 24  # columns of the per-feature tables


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
        _figure(m, [(m, _REALISED)], results)
        for m in metrics
        if m not in _NOT_CHARTED
        and not m.startswith("estimated_")
        and f"estimated_{m}" not in metrics
    )
    charts += "".join(  # estimated next to realised: one chart, two lines
        _figure(
            f"{m[len('estimated_') :]}: realised (blue) vs estimated (orange)",
            [(m[len("estimated_") :], _REALISED), (m, _ESTIMATED)],
            results,
        )
        for m in metrics
        if m.startswith("estimated_")
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
        f"<table class='monitor-windows'><tr>{head}</tr>{rows}</table>"
        f"{_concept(results)}{_per_feature(results)}</section>"
    )


def _figure(title: str, lines: Sequence[tuple[str, str]], results: Sequence[MonitorResult]) -> str:
    series = [([r.metrics.get(m) for r in results], colour) for m, colour in lines]
    return (
        f"<figure style='display:inline-block;margin:4px'><figcaption>{html.escape(title)}"
        f"</figcaption>{_sparkline(series)}</figure>"
    )


def _concept(results: Sequence[MonitorResult]) -> str:
    found = [(r, r.drift["concept"]) for r in results if r.drift.get("concept", {}).get("detected")]
    if not found:
        return ""
    items = "".join(
        f"<li>window {_when(r.window_start)}: the error rate changed from "
        f"{_num(c.get('error_rate_before'))} to {_num(c.get('error_rate_after'))}, beginning "
        f"{html.escape(str(c.get('began')))} ({html.escape(str(c.get('method')))} fired at "
        f"{html.escape(str(c.get('at')))})</li>"
        for r, c in found
    )
    return f"<h2>Concept drift</h2><ul class='concept'>{items}</ul>"


def _per_feature(results: Sequence[MonitorResult]) -> str:
    """Per-feature drift scores and permutation importances over the latest windows."""
    recent = list(results)[-_LAST_WINDOWS:]
    out = ""
    scores = [
        {n: c.get("statistic") for n, c in r.drift.get("columns", {}).items()} for r in recent
    ]
    if any(scores):
        out += _grid("Drift score per feature over time", recent, scores, _drifted(recent))
    importances = [r.drift.get("importance", {}).get("features", {}) for r in recent]
    if any(importances):
        metric = next(r.drift["importance"]["metric"] for r in recent if "importance" in r.drift)
        out += _grid(
            f"Permutation importance per window (drop in {metric})", recent, importances, None
        )
    return out


def _drifted(recent: Sequence[MonitorResult]) -> list[set[str]]:
    return [
        {n for n, c in r.drift.get("columns", {}).items() if c.get("drift_detected")}
        for r in recent
    ]


def _grid(
    title: str,
    recent: Sequence[MonitorResult],
    values: Sequence[Mapping[str, Any]],
    marked: Sequence[set[str]] | None,
) -> str:
    names = sorted({n for v in values for n in v})
    head = "".join(f"<th>{_when(r.window_start)}</th>" for r in recent)
    rows = "".join(
        f"<tr><th>{html.escape(n)}</th>"
        + "".join(
            f"<td{' class=drifted' if marked and n in marked[i] else ''}>"
            f"{_num(_as_float(v.get(n)))}</td>"
            for i, v in enumerate(values)
        )
        + "</tr>"
        for n in names
    )
    return (
        f"<h2>{html.escape(title)}</h2><table class='per-feature'><tr><th>feature</th>{head}"
        f"</tr>{rows}</table>"
    )


def _as_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _sparkline(series: Sequence[tuple[Sequence[float | None], str]]) -> str:
    """Lines on one scale, one per (values, colour)."""
    finite = [v for values, _ in series for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "<svg width='0' height='0'></svg>"
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    step = _WIDTH / max(max(len(values) for values, _ in series) - 1, 1)
    body = ""
    for values, colour in series:
        points = [
            (i * step, _HEIGHT - 4 - (v - low) / span * (_HEIGHT - 8))
            for i, v in enumerate(values)
            if v is not None and math.isfinite(v)
        ]
        xy = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dots = "".join(f"<circle cx='{x:.1f}' r='2.5' cy='{y:.1f}'/>" for x, y in points)
        body += (
            f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{xy}'/>"
            f"<g fill='{colour}'>{dots}</g>"
        )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}' "
        f"viewBox='-4 0 {_WIDTH + 8} {_HEIGHT}'>{body}</svg>"
    )


def _when(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"
