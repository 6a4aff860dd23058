"""The HTML page of a monitor: metrics over time, then the latest window's drift report."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ferryml.monitoring.drift import DriftReport
from ferryml.store.loop import MonitorResult

# The plot area of a sparkline, and the margins that hold its axes' labels.
_WIDTH, _HEIGHT = 300, 70
_LEFT, _BOTTOM, _TOP, _RIGHT = 52, 16, 6, 44
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
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("#", "start", "end", *metrics))
    rows = "".join(
        "<tr>"
        + f"<td>{i}</td><td>{_when(r.window_start)}</td><td>{_when(r.window_end)}</td>"
        + "".join(f"<td>{_num(r.metrics.get(m))}</td>" for m in metrics)
        + "</tr>"
        for i, r in enumerate(results, 1)
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
    labels = [f"window #{i} ({_when(r.window_start)})" for i, r in enumerate(results, 1)]
    return (
        f"<figure style='display:inline-block;margin:4px'><figcaption>{html.escape(title)}"
        f"</figcaption>{_sparkline(series, labels)}</figure>"
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
    """Per-feature drift scores (and the predictions', where the reference has them) and
    permutation importances over the latest windows."""
    first = max(len(results) - _LAST_WINDOWS, 0)
    recent = list(results)[first:]
    out = ""
    scores = [{n: c.get("statistic") for n, c in _tested(r).items()} for r in recent]
    if any(scores):
        out += _grid("Drift score per feature over time", recent, first, scores, _drifted(recent))
    importances = [r.drift.get("importance", {}).get("features", {}) for r in recent]
    if any(importances):
        metric = next(r.drift["importance"]["metric"] for r in recent if "importance" in r.drift)
        out += _grid(
            f"Permutation importance per window (drop in {metric})",
            recent,
            first,
            importances,
            None,
        )
    return out


def _tested(result: MonitorResult) -> dict[str, Any]:
    """The window's tested columns: features by name, the model's outputs as
    ``prediction`` (or ``prediction: NAME`` when there are several)."""
    found = dict(result.drift.get("columns", {}))
    outputs = result.drift.get("prediction", {})
    for name, column in outputs.items():
        found["prediction" if len(outputs) == 1 else f"prediction: {name}"] = column
    return found


def _drifted(recent: Sequence[MonitorResult]) -> list[set[str]]:
    return [{n for n, c in _tested(r).items() if c.get("drift_detected")} for r in recent]


def _grid(
    title: str,
    recent: Sequence[MonitorResult],
    first: int,
    values: Sequence[Mapping[str, Any]],
    marked: Sequence[set[str]] | None,
) -> str:
    names = sorted({n for v in values for n in v if not n.startswith("prediction")})
    names += sorted({n for v in values for n in v if n.startswith("prediction")})
    head = "".join(
        f"<th title='{_when(r.window_start)} to {_when(r.window_end)}'>#{first + i}</th>"
        for i, r in enumerate(recent, 1)
    )
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
        f"<h2>{html.escape(title)}</h2><table class='per-feature'><tr><th>window</th>{head}"
        f"</tr>{rows}</table>"
    )


def _as_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _sparkline(series: Sequence[tuple[Sequence[float | None], str]], labels: Sequence[str]) -> str:
    """Lines on one scale, one per (values, colour), with a value axis (lowest and highest
    value), a window axis (first and last window's number), the last value at the end of
    each line, and each point's window and value on hover."""
    finite = [v for values, _ in series for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "<svg width='0' height='0'></svg>"
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    count = max(len(values) for values, _ in series)
    step = _WIDTH / max(count - 1, 1)

    def y(v: float) -> float:
        return _TOP + _HEIGHT - (v - low) / span * _HEIGHT

    bottom = _TOP + _HEIGHT
    body = (
        f"<g stroke='#999' stroke-width='1'><line x1='0' y1='{_TOP}' x2='0' y2='{bottom}'/>"
        f"<line x1='0' y1='{bottom}' x2='{_WIDTH}' y2='{bottom}'/></g>"
        f"<g font-size='10' fill='#555' font-family='sans-serif'>"
        f"<text x='-4' y='{y(high) + 3:.1f}' text-anchor='end'>{_num(high)}</text>"
        f"<text x='-4' y='{y(low) + 3:.1f}' text-anchor='end'>{_num(low)}</text>"
        f"<text x='0' y='{bottom + 12}' text-anchor='start'>#1</text>"
        f"<text x='{_WIDTH}' y='{bottom + 12}' text-anchor='end'>#{count}</text></g>"
    )
    for values, colour in series:
        points = [
            (i * step, y(v), v, i)
            for i, v in enumerate(values)
            if v is not None and math.isfinite(v)
        ]
        if not points:
            continue
        xy = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
        dots = "".join(
            f"<circle cx='{px:.1f}' r='2.5' cy='{py:.1f}'><title>"
            f"{html.escape(labels[i] if i < len(labels) else f'#{i + 1}')}: {_num(v)}"
            "</title></circle>"
            for px, py, v, i in points
        )
        lx, ly, lv, _ = points[-1]
        body += (
            f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{xy}'/>"
            f"<g fill='{colour}'>{dots}</g>"
            f"<text x='{lx + 5:.1f}' y='{ly + 3:.1f}' font-size='10' fill='{colour}' "
            f"font-family='sans-serif'>{_num(lv)}</text>"
        )
    width, height = _LEFT + _WIDTH + _RIGHT, _TOP + _HEIGHT + _BOTTOM
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='{-_LEFT} 0 {width} {height}'>{body}</svg>"
    )


def _when(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.4g}"
