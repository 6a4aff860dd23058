"""Monitors and the windows they checked. Reading needs a reader; adding or removing a
monitor, and storing its windows (what running it does), a maintainer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml.errors import InvalidArgument
from ferryml.server.team._auth import needs
from ferryml.server.team._render import render
from ferryml.store.entities import Role
from ferryml.store.loop import MonitorResult

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/monitors", tags=["monitors"])
_MAINTAINER = [needs(Role.MAINTAINER)]
Ms = Field(ge=-(2**63), le=2**63 - 1)  # ms since the epoch, in a BIGINT column


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MonitorOut(BaseModel):
    name: str
    spec: dict[str, Any]


class CreateMonitor(_Body):
    spec: dict[str, Any]


class Removed(BaseModel):
    windows: int


class WindowBounds(BaseModel):
    window_start: int
    window_end: int


class AddWindow(_Body):
    window_start: int = Ms
    window_end: int = Ms
    metrics: dict[str, float]
    drift: dict[str, Any]


class Stored(BaseModel):
    stored: bool


def _store(request: Request) -> Any:
    return request.app.state.monitors


@router.get("", response_model=list[MonitorOut])
def list_monitors(request: Request) -> Response:
    rows = _store(request).list_monitors()
    return render([MonitorOut(name=n, spec=s) for n, s in rows], list[MonitorOut])


@router.get("/{name}", response_model=MonitorOut)
def get_monitor(name: str, request: Request) -> Response:
    return render(MonitorOut(name=name, spec=_store(request).get(name)), MonitorOut)


@router.put("/{name}", status_code=201, dependencies=_MAINTAINER)
def create_monitor(name: str, body: CreateMonitor, request: Request) -> Response:
    """Store a monitor's spec, checked as ``ferry monitor add`` checks it (which also
    checks that its deployment and reference exist)."""
    from ferryml.monitoring._spec import MonitorSpec  # not the monitoring machinery

    try:
        spec = MonitorSpec.from_dict({**body.spec, "name": name})
    except (TypeError, ValueError, AttributeError) as e:  # missing or mistyped fields
        raise InvalidArgument(f"The monitor's spec is malformed: {e}.") from e
    _store(request).create(name, spec.to_dict())
    return Response(status_code=201)


@router.delete("/{name}", response_model=Removed, dependencies=_MAINTAINER)
def remove_monitor(name: str, request: Request) -> Response:
    """Delete a monitor and its windows; answers how many windows went."""
    return render(Removed(windows=_store(request).remove(name)), Removed)


@router.get("/{name}/windows", response_model=list[MonitorResult])
def list_windows(
    name: str,
    request: Request,
    ended_after: Annotated[int | None, Query(ge=-(2**63), le=2**63 - 1)] = None,
) -> Response:
    found = _store(request).list_results(name, ended_after=ended_after)
    return render(found, list[MonitorResult])


@router.delete("/{name}/windows", response_model=Removed, dependencies=_MAINTAINER)
def remove_windows(
    name: str, request: Request, ended_after: Annotated[int, Query(ge=-(2**63), le=2**63 - 1)]
) -> Response:
    """Delete the windows ending after ``ended_after`` (ms), to check them again."""
    return render(
        Removed(windows=_store(request).remove_results(name, ended_after=ended_after)), Removed
    )


@router.get("/{name}/windows/last", response_model=WindowBounds | None)
def last_window(name: str, request: Request) -> Response:
    last = _store(request).last_window(name)
    bounds = None if last is None else WindowBounds(window_start=last[0], window_end=last[1])
    return render(bounds, WindowBounds | None)


@router.post("/{name}/windows", response_model=Stored, dependencies=_MAINTAINER)
def add_window(name: str, body: AddWindow, request: Request) -> Response:
    """Store a window's result; ``stored`` is false when it was stored already."""
    _store(request).get(name)  # NotFound: windows of no monitor would never be read
    stored = _store(request).add_result(
        name, body.window_start, body.window_end, body.metrics, body.drift
    )
    return render(Stored(stored=stored), Stored)
