"""Experiments and runs: create, read, batched logging, search, metric history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ferryml._identity import current_user
from ferryml.server._errors import json_response
from ferryml.server.team._auth import needs
from ferryml.server.team._render import render
from ferryml.server.team._schemas import (
    CreatedExperiment,
    CreateExperiment,
    CreateRun,
    KillRuns,
    Lifecycle,
    MetricPoints,
    RecordBatch,
    RunKeysOut,
    SearchResult,
    SearchRuns,
    Written,
)
from ferryml.store.entities import ArtifactEntry, Experiment, Metric, Role, Run, RunInfo, ViewType
from ferryml.store.records import records_from_batch

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tracking"])
_MAINTAINER = [needs(Role.MAINTAINER)]


def _store(request: Request) -> Any:
    return request.app.state.tracking


@router.post("/experiments", response_model=CreatedExperiment, status_code=201)
def create_experiment(body: CreateExperiment, request: Request) -> Response:
    experiment_id = _store(request).create_experiment(body.name, body.tags)
    return render(CreatedExperiment(experiment_id=experiment_id), CreatedExperiment, 201)


@router.get("/experiments", response_model=list[Experiment])
def list_experiments(
    request: Request, name: str | None = None, view: ViewType = ViewType.ACTIVE_ONLY
) -> Response:
    store = _store(request)
    if name is None:
        return render(store.list_experiments(view), list[Experiment])
    found = store.get_experiment_by_name(name)
    return render([found] if found is not None else [], list[Experiment])


@router.get("/experiments/{experiment_id}", response_model=Experiment)
def get_experiment(experiment_id: str, request: Request) -> Response:
    return render(_store(request).get_experiment(experiment_id), Experiment)


@router.patch("/experiments/{experiment_id}", response_model=Experiment)
def update_experiment(experiment_id: str, body: Lifecycle, request: Request) -> Response:
    """Mark an experiment (and its runs) deleted, or active again."""
    updated = _store(request).update_experiment(experiment_id, lifecycle_stage=body.lifecycle_stage)
    return render(updated, Experiment)


@router.delete("/experiments/{experiment_id}", status_code=204, dependencies=_MAINTAINER)
def delete_experiment(experiment_id: str, request: Request) -> Response:
    """Remove an experiment marked deleted, and its runs, for good."""
    _store(request).delete_experiment(experiment_id)
    return Response(status_code=204)


@router.post("/runs", response_model=RunInfo, status_code=201)
def create_run(body: CreateRun, request: Request) -> Response:
    info = _store(request).create_run(
        body.experiment_id,
        run_name=body.run_name,
        start_time=body.start_time,
        user=current_user(),  # the token's user, never the client's word
        description=body.description,
        parent_run_id=body.parent_run_id,
        tags=body.tags,
        run_id=body.run_id,
    )
    return render(info, RunInfo, 201)


@router.get("/runs/{run_id}", response_model=Run)
def get_run(run_id: str, request: Request) -> Response:
    return render(_store(request).get_run(run_id), Run)


@router.patch("/runs/{run_id}", response_model=RunInfo)
def update_run(run_id: str, body: Lifecycle, request: Request) -> Response:
    """Mark a run deleted (hidden from searches), or active again."""
    return render(_store(request).update_run(run_id, lifecycle_stage=body.lifecycle_stage), RunInfo)


@router.delete("/runs/{run_id}", status_code=204, dependencies=_MAINTAINER)
def delete_run(run_id: str, request: Request) -> Response:
    """Remove a run marked deleted, with everything logged to it, for good."""
    _store(request).delete_run(run_id)
    return Response(status_code=204)


@router.get("/runs/{run_id}/metrics/{key:path}", response_model=list[Metric])
def metric_history(run_id: str, key: str, request: Request) -> Response:
    return render(_store(request).get_metric_history(run_id, key), list[Metric])


@router.get("/runs/{run_id}/series", response_model=MetricPoints)
def metric_series(
    run_id: str,
    key: str,
    request: Request,
    points: Annotated[int, Query(ge=3, le=20_000)] = 1000,
    x: Literal["step", "time"] = "step",
) -> Response:
    """A metric's history downsampled to at most ``points`` points that keep its shape, as
    columns: what a chart draws. The database keeps each of ``points`` step ranges' first,
    last, lowest and highest point; LTTB over ``x`` picks among those."""
    series = request.app.state.run_views.get_metric_series(run_id, key, buckets=points)
    from ferryml.tracking.downsample import lttb  # numpy: loaded on first use

    chosen = lttb(series.steps if x == "step" else series.timestamps, series.values, points)
    body = {
        "key": key,
        "total": series.total,
        "step": series.steps[chosen],
        "time": series.timestamps[chosen],
        "value": series.values[chosen],
    }
    return json_response(body)


@router.get("/experiments/{experiment_id}/keys", response_model=RunKeysOut)
def run_keys(experiment_id: str, request: Request) -> Response:
    """The param, metric and tag keys the experiment's runs use (columns to choose)."""
    _store(request).get_experiment(experiment_id)
    return render(request.app.state.run_views.list_run_keys([experiment_id]), RunKeysOut)


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactEntry])
def list_artifacts(run_id: str, request: Request, prefix: str = "") -> Response:
    return render(_store(request).list_artifacts(run_id, prefix), list[ArtifactEntry])


@router.post("/runs/search", response_model=SearchResult)
def search_runs(body: SearchRuns, request: Request) -> Response:
    runs, next_offset = _store(request).search_runs(
        body.experiment_ids,
        body.filter or "",
        body.order_by or (),
        body.max_results,
        body.offset,
        body.view,
    )
    return render(SearchResult(runs=runs, next_offset=next_offset), SearchResult)


@router.post("/runs/killed", response_model=Written)
def mark_killed(body: KillRuns, request: Request) -> Response:
    _store(request).mark_killed(body.run_ids)
    return render(Written(records=len(body.run_ids)), Written)


@router.post(
    "/records",
    response_model=Written,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RecordBatch.model_json_schema()}},
        }
    },
)
async def write_records(request: Request) -> Response:
    """A batch of logged values; applying the same batch twice stores it once."""
    # Parsed and checked by pydantic from the bytes: through json.loads first, as a declared
    # body would be, the parsing took longer than the database's insert.
    body = await request.body()
    count = await run_in_threadpool(_write_records, _store(request), body)
    return render(Written(records=count), Written)


def _write_records(store: Any, body: bytes) -> int:
    try:
        batch = RecordBatch.model_validate_json(body)
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    records = records_from_batch(dict(batch))
    store.write_records(records)
    return len(records)
