"""The prediction log's index and feedback labels. Reading needs a reader; indexing the
partitions a model server wrote, and giving feedback, a writer. Who gave a label is the
token's user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ferryml._identity import current_user
from ferryml.errors import InvalidArgument
from ferryml.registry.lineage import LineageGraph, prediction_lineage
from ferryml.server.team._render import render
from ferryml.store.loop import Feedback, PredictionPartition
from ferryml.store.request_errors import ERROR_TEXT_LIMIT, RequestErrorCount, RequestErrors

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"])
Ms = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
MsQuery = Annotated[int | None, Query(ge=-(2**63), le=2**63 - 1)]
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Deployment = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PredictionId = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartitionIn(_Body):
    digest: Digest
    deployment: Deployment
    rows: int = Field(ge=0, le=2**31 - 1)
    min_time: Ms
    max_time: Ms
    min_id: PredictionId
    max_id: PredictionId
    creation_time: Ms = 0


class Partitions(_Body):
    partitions: list[PartitionIn] = Field(max_length=100_000)


class Replacement(_Body):
    old: list[Digest] = Field(min_length=1, max_length=100_000)
    new: list[PartitionIn] = Field(max_length=100_000)


class FeedbackIn(_Body):
    prediction_id: PredictionId
    deployment: Deployment
    prediction_time: Ms
    label: str = Field(max_length=100_000)  # JSON text
    time: Ms


class FeedbackRows(_Body):
    rows: list[FeedbackIn] = Field(max_length=100_000)


class RequestErrorsIn(_Body):
    batch: str = Field(min_length=1, max_length=64)
    deployment: Deployment
    route: str = Field(max_length=256)
    version: int = Field(ge=0, le=2**31 - 1)
    status: int = Field(ge=400, le=599)
    time: Ms
    count: int = Field(ge=1, le=2**62)
    error: str = Field(max_length=ERROR_TEXT_LIMIT)


class RequestErrorRows(_Body):
    rows: list[RequestErrorsIn] = Field(max_length=100_000)


def _store(request: Request) -> Any:
    return request.app.state.predictions


@router.get("/deployments", response_model=list[str])
def list_deployments(request: Request) -> Response:
    """Every deployment with logged predictions."""
    return render(_store(request).list_deployments(), list[str])


@router.get("/partitions", response_model=list[PredictionPartition])
def list_partitions(
    deployment: str, request: Request, since: MsQuery = None, until: MsQuery = None
) -> Response:
    found = _store(request).list_partitions(deployment, since=since, until=until)
    return render(found, list[PredictionPartition])


@router.get("/partitions/by-id", response_model=list[PredictionPartition])
def search_partitions_by_id(lowest: str, highest: str, request: Request) -> Response:
    """Partitions whose id range overlaps ``[lowest, highest]``."""
    found = _store(request).search_partitions_by_id(lowest, highest)
    return render(found, list[PredictionPartition])


@router.post("/partitions", status_code=204)
def create_partitions(body: Partitions, request: Request) -> Response:
    """Index partitions already in the artifact store, all or none; again changes nothing."""
    rows = [PredictionPartition(**p.model_dump()) for p in body.partitions]
    _store(request).create_partitions(rows)
    return Response(status_code=204)


@router.post("/partitions/replace", response_model=bool)
def replace_partitions(body: Replacement, request: Request) -> Response:
    """Swap partitions for their compacted form in one transaction; false, and nothing
    changed, if one of ``old`` is no longer indexed."""
    rows = [PredictionPartition(**p.model_dump()) for p in body.new]
    return render(_store(request).replace_partitions(body.old, rows), bool)


@router.post("/feedback", response_model=list[str])
def upsert_feedback(body: FeedbackRows, request: Request) -> Response:
    """Store labels as the token's user; answers the ids that had a label before."""
    ids = [r.prediction_id for r in body.rows]
    if len(set(ids)) != len(ids):
        raise InvalidArgument("Feedback rows repeat a prediction id; send each id once.")
    rows = [Feedback(**r.model_dump(), user=current_user()) for r in body.rows]
    replaced = _store(request).upsert_feedback(rows, user=current_user())
    return render(sorted(replaced), list[str])


@router.get("/feedback", response_model=list[Feedback])
def list_feedback(
    deployment: str,
    request: Request,
    since: MsQuery = None,
    until: MsQuery = None,
    recorded_after: MsQuery = None,
) -> Response:
    found = _store(request).list_feedback(
        deployment, since=since, until=until, recorded_after=recorded_after
    )
    return render(found, list[Feedback])


@router.post("/errors", status_code=204)
def create_request_errors(body: RequestErrorRows, request: Request) -> Response:
    """Store a model server's counts of failed requests; a batch stored already is skipped."""
    rows = [RequestErrors(**r.model_dump()) for r in body.rows]
    request.app.state.request_errors.create_request_errors(rows)
    return Response(status_code=204)


@router.get("/errors/counts", response_model=list[RequestErrorCount])
def count_request_errors(
    deployment: str,
    since: Annotated[int, Query(ge=-(2**62), le=2**62)],
    until: Annotated[int, Query(ge=-(2**62), le=2**62)],
    width_ms: Annotated[int, Query(ge=1, le=2**40)],
    request: Request,
) -> Response:
    """Failed requests per route, version, status and slot of ``width_ms`` from ``since``."""
    found = request.app.state.request_errors.count_request_errors(
        deployment, since=since, until=until, width_ms=width_ms
    )
    return render(found, list[RequestErrorCount])


@router.get("/errors/latest", response_model=list[RequestErrors])
def latest_request_errors(
    deployment: str,
    since: Annotated[int, Query(ge=-(2**62), le=2**62)],
    request: Request,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
    route: str | None = None,
) -> Response:
    """The latest counts of failed requests, newest first, of one route or all, with their
    errors' texts."""
    found = request.app.state.request_errors.latest_request_errors(
        deployment, since=since, limit=limit, route=route
    )
    return render(found, list[RequestErrors])


@router.get("/{prediction_id}/lineage", response_model=LineageGraph)
def lineage(prediction_id: PredictionId, request: Request) -> Response:
    """The prediction, the model version that made it, and where that version came from."""
    graph = prediction_lineage(prediction_id, settings=request.app.state.settings)
    return render(graph, LineageGraph)
