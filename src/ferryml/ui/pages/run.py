"""A run: params, tags, environment, inputs and outputs drawn on the server; metric charts
and the artifact tree by its script, ``static/run.js``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ferryml.ui._pages import Viewer, render

router = APIRouter()

# Points per chart: more than a chart is wide, few enough to draw at once. Fixed, so the
# page can name each chart's series URL for the browser to fetch while the scripts load.
CHART_POINTS = 1000

# Tags the environment capture writes, shown under Environment rather than Tags.
ENVIRONMENT = {
    "ferry.git.commit": "Commit",
    "ferry.git.dirty": "Uncommitted changes",
    "ferry.git.diff_digest": "Diff digest",
    "ferry.python": "Python",
    "ferry.platform": "Platform",
    "ferry.command": "Command",
    "ferry.user": "User",
    "ferry.packages.digest": "Packages digest",
}


def _load(request: Request, run_id: str) -> dict[str, Any]:
    state = request.app.state
    run = state.tracking.get_run(run_id)
    return {
        "run": run,
        "experiment": state.tracking.get_experiment(run.info.experiment_id),
        "outputs": state.run_views.list_run_outputs(run_id),
    }


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, user: Viewer) -> Response:
    found = await run_in_threadpool(_load, request, run_id)
    run = found["run"]
    tags = run.data.tags
    return render(
        request,
        "run.html",
        title=f"Run {run.info.run_name}",
        environment=[(label, tags[key]) for key, label in ENVIRONMENT.items() if key in tags],
        tags={k: v for k, v in tags.items() if k not in ENVIRONMENT},
        data={
            "run_id": run.info.run_id,
            "status": run.info.status.value,
            "metrics": sorted(run.data.metrics),
            "chart_points": CHART_POINTS,
        },
        series_urls=[_series_url(run.info.run_id, key) for key in sorted(run.data.metrics)],
        **found,
    )


def _series_url(run_id: str, key: str) -> str:
    """The URL run.js's fetchSeries builds for the chart by step (same order and quoting)."""
    query = urlencode({"key": key, "x": "step", "points": CHART_POINTS}, safe="*")
    return f"/api/v1/runs/{quote(run_id, safe='')}/series?{query}"
