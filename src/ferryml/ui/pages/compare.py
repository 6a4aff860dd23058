"""Runs side by side: the diff table drawn on the server; overlaid charts and parallel
coordinates by its script, ``static/compare.js``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ferryml.errors import InvalidArgument
from ferryml.tracking.compare import compare_runs
from ferryml.ui._pages import Viewer, render

router = APIRouter()
MAX_RUNS = 50


@router.get("/compare")
async def compare_page(
    request: Request, user: Viewer, run: Annotated[list[str] | None, Query()] = None
) -> Response:
    ids = list(dict.fromkeys(run or []))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise InvalidArgument(
            f"Compare needs 2 to {MAX_RUNS} runs (?run=ID&run=ID); got {len(ids)}. "
            "Select them in an experiment's runs table."
        )
    runs = await run_in_threadpool(lambda: [request.app.state.tracking.get_run(i) for i in ids])
    comparison = compare_runs(runs)
    return render(
        request,
        "compare.html",
        title=f"Compare {len(runs)} runs",
        runs=runs,
        comparison=comparison,
        data={
            "runs": [
                {
                    "id": r.info.run_id,
                    "name": r.info.run_name,
                    "params": dict(r.data.params),
                    "metrics": dict(r.data.metrics),
                }
                for r in runs
            ]
        },
    )
