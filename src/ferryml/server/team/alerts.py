"""Alerts: the history of alerts fired and resolved, each channel's delivery, and where
each (monitor, rule) stands. Reading needs a reader; recording (what running a monitor
does) a maintainer, as storing a monitor's windows does. The rules and channels live in
the monitor's spec and ``ferry.yaml``: alerts are delivered by the process that runs the
monitor, which holds the channels' secrets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml.errors import Conflict, InvalidArgument
from ferryml.server.team._auth import needs
from ferryml.server.team._render import render
from ferryml.store.entities import Role
from ferryml.store.loop import Alert, AlertState, Delivery

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
_MAINTAINER = [needs(Role.MAINTAINER)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Ms = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=250)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateIn(_Body):
    monitor: Name
    rule: Name
    consecutive: int = Field(default=0, ge=0, le=2**31 - 1)
    firing: bool = False
    last_fired: Ms | None = None
    reference: float | None = None
    last_window_end: Ms | None = None


class AlertIn(_Body):
    id: int = 0  # the store assigns it
    time: Ms
    monitor: Name
    rule: Name
    metric: Name
    op: str = Field(max_length=16)
    value: float
    threshold: float
    reference: float | None = None
    state: str = Field(pattern=r"^(fired|resolved)$")
    message: str = Field(max_length=8000)
    window_start: Ms
    window_end: Ms
    deliveries: list[Any] = Field(default=[], max_length=0)


class Transition(_Body):
    expected: StateIn
    state: StateIn
    alert: AlertIn | None = None


class Transitioned(BaseModel):
    alert: Alert | None


class DeliveryIn(_Body):
    channel: Name
    attempts: int = Field(ge=0, le=2**31 - 1)
    ok: bool
    error: str | None = Field(default=None, max_length=8000)
    time: Ms


def _store(request: Request) -> Any:
    return request.app.state.alerts


@router.get("", response_model=list[Alert])
def list_alerts(
    request: Request,
    monitor: str | None = None,
    rule: str | None = None,
    limit: Annotated[int, Query(le=10_000)] = 100,  # the store says why below 1
) -> Response:
    found = _store(request).list_alerts(monitor=monitor, rule=rule, limit=limit)
    return render(found, list[Alert])


@router.get("/state", response_model=AlertState)
def get_state(monitor: str, rule: str, request: Request) -> Response:
    return render(_store(request).get_state(monitor, rule), AlertState)


@router.post("/transitions", response_model=Transitioned, dependencies=_MAINTAINER)
def transition(body: Transition, request: Request) -> Response:
    """Compare and set: write ``state`` (and record ``alert``) if the rule's state is still
    ``expected``; else 409, and the client steps again from the state it reads."""
    expected = AlertState(**body.expected.model_dump())
    state = AlertState(**body.state.model_dump())
    key = (expected.monitor, expected.rule)
    if (state.monitor, state.rule) != key or (
        body.alert is not None and (body.alert.monitor, body.alert.rule) != key
    ):
        raise InvalidArgument("The transition names two (monitor, rule) pairs; send one.")
    alert = None
    if body.alert is not None:
        alert = Alert(**{**body.alert.model_dump(), "deliveries": ()})

    def step(current: AlertState) -> tuple[AlertState, Alert | None]:
        if current != expected:
            raise Conflict(
                f"The state of rule {expected.rule!r} of monitor {expected.monitor!r} changed "
                "meanwhile; read it again and retry."
            )
        return state, alert

    recorded = _store(request).transition(expected.monitor, expected.rule, step)
    return render(Transitioned(alert=recorded), Transitioned)


@router.get("/{alert_id}", response_model=Alert)
def get_alert(alert_id: Id, request: Request) -> Response:
    return render(_store(request).get_alert(alert_id), Alert)


@router.post("/{alert_id}/deliveries", status_code=204, dependencies=_MAINTAINER)
def record_delivery(alert_id: Id, body: DeliveryIn, request: Request) -> Response:
    """Record (or replace) what became of sending the alert to one channel."""
    store = _store(request)
    store.get_alert(alert_id)  # NotFound
    store.record_delivery(alert_id, Delivery(**body.model_dump()))
    return Response(status_code=204)
