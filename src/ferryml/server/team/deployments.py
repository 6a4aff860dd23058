"""Deployments: routes, weights, promote, rollback and history. Reading needs a reader;
every change a maintainer, or a maintainer the deployment names."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml._identity import current_user
from ferryml.errors import InvalidArgument
from ferryml.server.team._auth import needs_maintainer_of
from ferryml.server.team._render import render
from ferryml.serving.traffic import deployment_traffic
from ferryml.store.sql_deployments import DeploymentEvent

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
_MAINTAINER = [needs_maintainer_of("deployment")]


class RouteOut(BaseModel):
    version: int
    weight: float
    role: str


class DeploymentOut(BaseModel):
    name: str
    model: str
    routes: list[RouteOut]
    policy: dict[str, Any]


class _Figures(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    requests: int = Field(description="Requests answered or failed.")
    rate: float = Field(description="Requests per second.")
    p50_ms: float | None = Field(description="Median latency of the answered requests.")
    p99_ms: float | None = Field(description="99th percentile latency of the answered requests.")
    errors: int = Field(description="Requests answered with an error (4xx or 5xx).")


class TrafficBucket(_Figures):
    """One slice of the span."""

    start: int = Field(description="The slice's start, ms since the epoch.")


class RouteTrafficOut(_Figures):
    """A route's traffic over the span, from the prediction log and the failed requests."""

    route: str = Field(description="The route; empty for requests refused before routing.")
    version: int = Field(description="The route's model version (0: no route).")
    errors_4xx: int = Field(description="Errors on the client's side (bad input).")
    errors_5xx: int = Field(description="Errors on the server's side (a failing model, overload).")
    error_rate: float = Field(description="errors / requests, 0 without requests.")
    last_error: str | None = Field(description="The latest error's text, cut short.")
    buckets: list[TrafficBucket]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateDeployment(_Body):
    model: str
    version: int = Field(ge=1, le=2**31 - 1)  # the registry's INTEGER column
    canary: int | None = Field(default=None, ge=1, le=2**31 - 1)
    canary_weight: float = Field(default=10.0, ge=0, le=100)
    shadow: int | None = Field(default=None, ge=1, le=2**31 - 1)
    reason: str = ""


class Reason(_Body):
    reason: str = ""


class SetWeights(_Body):
    weights: dict[str, float]
    reason: str = ""


def _manager(request: Request) -> Any:
    return request.app.state.deployments


def _out(name: str, spec: Any, status: int = 200) -> Response:
    return render({"name": name, **spec.to_dict()}, DeploymentOut, status)


@router.get("", response_model=list[DeploymentOut])
def list_deployments(request: Request) -> Response:
    rows = _manager(request).store.list_deployments()
    return render([{"name": name, **spec} for name, spec in rows], list[DeploymentOut])


@router.get("/{name}", response_model=DeploymentOut)
def get_deployment(name: str, request: Request) -> Response:
    return _out(name, _manager(request).get(name))


@router.put("/{name}", response_model=DeploymentOut, status_code=201, dependencies=_MAINTAINER)
def create_deployment(name: str, body: CreateDeployment, request: Request) -> Response:
    spec = _manager(request).create(
        name,
        body.model,
        body.version,
        canary=body.canary,
        canary_weight=body.canary_weight,
        shadow=body.shadow,
        reason=body.reason,
    )
    return _out(name, spec, 201)


@router.post("/{name}/weights", response_model=DeploymentOut, dependencies=_MAINTAINER)
def set_weights(name: str, body: SetWeights, request: Request) -> Response:
    return _out(name, _manager(request).set_weights(name, body.weights, reason=body.reason))


@router.post("/{name}/promote", response_model=DeploymentOut, dependencies=_MAINTAINER)
def promote(name: str, body: Reason, request: Request) -> Response:
    return _out(name, _manager(request).promote(name, reason=body.reason))


@router.post("/{name}/rollback", response_model=DeploymentOut, dependencies=_MAINTAINER)
def rollback(name: str, body: Reason, request: Request) -> Response:
    return _out(name, _manager(request).rollback(name, reason=body.reason))


@router.get("/{name}/history", response_model=list[DeploymentEvent])
def history(name: str, request: Request) -> Response:
    return render(_manager(request).history(name), list[DeploymentEvent])


@router.get("/{name}/traffic", response_model=list[RouteTrafficOut])
def traffic(
    name: str,
    request: Request,
    span_s: Annotated[int, Query(ge=1, le=24 * 3600)] = 900,
    buckets: Annotated[int, Query(ge=1, le=500)] = 30,
) -> Response:
    """Each route's requests per second, latency and errors over the last ``span_s``
    seconds, from the prediction log and the model servers' failed requests (what the
    deployment page polls)."""
    found = deployment_traffic(name, span_s=span_s, buckets=buckets, settings=_settings(request))
    return render([RouteTrafficOut.model_validate(r) for r in found], list[RouteTrafficOut])


def _settings(request: Request) -> Any:
    return request.app.state.settings


class WriteSpec(_Body):
    spec: dict[str, Any]
    action: str = Field(pattern=r"^[a-z_]{1,32}$")
    reason: str = ""


@router.post("/{name}/spec", response_model=dict[str, Any] | None, dependencies=_MAINTAINER)
def write_spec(name: str, body: WriteSpec, request: Request) -> Response:
    """The store's write, for clients that run ``ferry deploy`` against this server:
    create (``action: create``) or replace the spec; answers the spec it replaced."""
    from ferryml.serving.deployments import Spec

    try:
        spec = Spec.from_dict(body.spec).to_dict()
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidArgument(f"The deployment spec is malformed: {e!r}.") from e
    store = _manager(request).store
    if body.action == "create":
        store.create(name, spec, user=current_user(), reason=body.reason)
        return render(None, None, 201)
    before = store.update(name, spec, action=body.action, user=current_user(), reason=body.reason)
    return render(before, dict[str, Any])
