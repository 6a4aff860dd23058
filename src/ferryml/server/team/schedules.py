"""Pipeline schedules. Adding or removing one needs a maintainer: a schedule makes the
scheduler run a pipeline unattended, as a policy does. The scheduler's own writes
(claiming a due occurrence, recording how its run ended) need a writer, who may run
pipelines anyway. The clients compute the times from the cron expression; the server
checks the expression, and its claim is the lock that runs each occurrence once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml.pipelines.schedule import next_occurrence
from ferryml.server.team._auth import needs
from ferryml.server.team._render import render
from ferryml.store.entities import Role, Schedule

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])
_MAINTAINER = [needs(Role.MAINTAINER)]
Millis = Annotated[int, Field(ge=0, le=253_402_300_799_999)]  # up to the year 9999
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSchedule(_Body):
    name: str = Field(max_length=250)
    target: str = Field(max_length=500, pattern=rf"^{_DOTTED}:{_DOTTED}$")
    cron: str = Field(max_length=200)
    params: dict[str, Annotated[str, Field(max_length=6000)]] = {}
    next_run_time: Millis
    creation_time: Millis


class ClaimSchedule(_Body):
    due: Millis
    next_run_time: Millis
    now_ms: Millis


class Claimed(BaseModel):
    schedule: Schedule | None  # None: another scheduler took this occurrence


class RecordResult(_Body):
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    status: Literal["FINISHED", "FAILED", "KILLED"]
    run_time: Millis | None = None


class Recorded(BaseModel):
    recorded: bool  # False: a later occurrence was claimed since


def _store(request: Request) -> Any:
    return request.app.state.schedules


@router.get("", response_model=list[Schedule])
def list_schedules(
    request: Request, due_at: Annotated[int | None, Query(ge=0, le=253_402_300_799_999)] = None
) -> Response:
    """Every schedule by name; with ``due_at``, those due then, earliest first."""
    store = _store(request)
    found = store.list_schedules() if due_at is None else store.list_due(due_at)
    return render(found, list[Schedule])


@router.post("", response_model=Schedule, status_code=201, dependencies=_MAINTAINER)
def create_schedule(body: CreateSchedule, request: Request) -> Response:
    next_occurrence(body.cron, body.creation_time)  # a bad expression is refused here too
    schedule = _store(request).create_schedule(
        body.name,
        target=body.target,
        cron=body.cron,
        params=body.params,
        next_run_time=body.next_run_time,
        creation_time=body.creation_time,
    )
    return render(schedule, Schedule, 201)


@router.get("/{name}", response_model=Schedule)
def get_schedule(name: str, request: Request) -> Response:
    return render(_store(request).get_schedule(name), Schedule)


@router.delete("/{name}", status_code=204, dependencies=_MAINTAINER)
def delete_schedule(name: str, request: Request) -> Response:
    """Remove a schedule; a run it already started finishes."""
    _store(request).delete_schedule(name)
    return Response(status_code=204)


@router.post("/{name}/claim", response_model=Claimed)
def claim(name: str, body: ClaimSchedule, request: Request) -> Response:
    """Take the occurrence ``due``: the schedule moves to ``next_run_time``, RUNNING."""
    got = _store(request).claim(
        name, due=body.due, next_run_time=body.next_run_time, now_ms=body.now_ms
    )
    return render(Claimed(schedule=got), Claimed)


@router.post("/{name}/result", response_model=Recorded)
def record_result(name: str, body: RecordResult, request: Request) -> Response:
    """How a claimed run ended; dropped when a later occurrence was claimed since."""
    recorded = _store(request).record_result(name, body.run_id, body.status, run_time=body.run_time)
    return render(Recorded(recorded=recorded), Recorded)
