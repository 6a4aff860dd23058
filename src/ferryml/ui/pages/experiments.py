"""Experiments, and the runs table of one (its script: ``static/runs.js``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Experiments", "/experiments", 10)


@router.get("/")
def home(user: Viewer) -> Response:
    return RedirectResponse("/experiments", status_code=303)


@router.get("/experiments")
async def experiments(request: Request, user: Viewer) -> Response:
    found = await run_in_threadpool(request.app.state.tracking.list_experiments)
    return render(request, "experiments.html", title="Experiments", experiments=found)


@router.get("/experiments/{experiment_id}")
async def runs(request: Request, experiment_id: str, user: Viewer) -> Response:
    experiment = await run_in_threadpool(request.app.state.tracking.get_experiment, experiment_id)
    return render(
        request,
        "runs.html",
        title=f"Runs of {experiment.name}",
        experiment=experiment,
        data={"experiment_id": experiment.experiment_id},
    )
