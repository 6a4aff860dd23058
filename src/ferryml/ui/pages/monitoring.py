"""Monitors: each one's windows over time (per-feature drift scores, realised and
estimated performance, concept-drift points), a window's drift report, and alerts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import NotFound
from ferryml.store.loop import MonitorResult
from ferryml.ui._chart import Chart, line_chart
from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Monitoring", "/monitors", 60)
_DRIFT = ("drift_share", "prediction_drift")
_SKIP = {"rows", "labelled", "concept_drift", *_DRIFT}
CHARTED = 2000  # windows drawn, the newest (a year of hourly windows is ~8,800)
LISTED = 200  # windows in the table, the newest


@router.get("/monitors")
def monitors(request: Request, user: Viewer) -> Response:
    store = request.app.state.monitors
    found = [(name, spec, store.last_window(name)) for name, spec in store.list_monitors()]
    alerts = request.app.state.alerts.list_alerts(limit=20)
    return render(request, "monitors.html", title="Monitoring", monitors=found, alerts=alerts)


@router.get("/monitors/{name}")
def monitor(request: Request, name: str, user: Viewer) -> Response:
    store = request.app.state.monitors
    spec = store.get(name)
    windows = store.list_results(name)[-CHARTED:]
    alerts = request.app.state.alerts.list_alerts(monitor=name, limit=100)
    return render(
        request,
        "monitor.html",
        title=f"Monitor {name}",
        name=name,
        spec=spec,
        windows=list(reversed(windows[-LISTED:])),
        listed=LISTED,
        charts=charts(windows),
        alerts=alerts,
    )


@router.get("/monitors/{name}/windows/{window_end}")
def window(request: Request, name: str, window_end: int, user: Viewer) -> Response:
    found = [w for w in request.app.state.monitors.list_results(name) if w.window_end == window_end]
    if not found:
        raise NotFound(
            f"Monitor {name!r} has no window ending at {window_end}; see /monitors/{name}."
        )
    result = found[0]
    columns = sorted(
        (result.drift.get("columns") or {}).values(),
        key=lambda c: (not c.get("drift_detected"), c.get("column", "")),
    )
    return render(
        request,
        "monitor_window.html",
        title=f"Window of {name}",
        name=name,
        window=result,
        columns=columns,
        prediction=list((result.drift.get("prediction") or {}).values()),
        concept=result.drift.get("concept"),
        errors={
            k: v["error"] for k, v in result.drift.items() if isinstance(v, dict) and "error" in v
        },
    )


def charts(windows: list[MonitorResult]) -> list[Chart]:
    """Drift scores per feature, the drift share, and performance (realised, estimated)
    with concept-drift points marked."""
    xs = [w.window_end for w in windows]
    features = sorted({c for w in windows for c in (w.drift.get("columns") or {})})
    scores = {f: [_statistic(w, f) for w in windows] for f in features}
    marks = [w.window_end for w in windows if w.metrics.get("concept_drift") == 1.0]
    performance_keys = sorted({k for w in windows for k in w.metrics if k not in _SKIP})
    performance = {k: [w.metrics.get(k) for w in windows] for k in performance_keys}
    shares = {k: [w.metrics.get(k, w.drift.get(k)) for w in windows] for k in ("drift_share",)}
    return [
        line_chart("Drift score per feature", xs, scores, marks=marks),
        line_chart("Share of drifted features", xs, _numbers(shares), marks=marks),
        line_chart("Performance: realised and estimated", xs, performance, marks=marks),
    ]


def _statistic(window: MonitorResult, feature: str) -> float | None:
    column = (window.drift.get("columns") or {}).get(feature) or {}
    value = column.get("statistic")
    return value if isinstance(value, int | float) else None


def _numbers(values: dict[str, list[Any]]) -> dict[str, list[float | None]]:
    return {k: [v if isinstance(v, int | float) else None for v in vs] for k, vs in values.items()}
