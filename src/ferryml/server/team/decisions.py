"""Decisions, policies' watermarks and the agents' lease. Reading needs a reader; what
the agent writes (decisions, their steps, watermarks, the lease) a maintainer; approving
or rejecting a decision a maintainer, or a maintainer its deployment names. Who approved
or rejected is the token's user."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml._identity import current_user
from ferryml.errors import InvalidArgument, NotFound
from ferryml.server.team._auth import maintainer_of, needs
from ferryml.server.team._render import render
from ferryml.store.entities import Role, User
from ferryml.store.loop import DecisionEvent, DecisionRecord

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["decisions"])
_MAINTAINER = [needs(Role.MAINTAINER)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=250)]
PathName = Annotated[str, Path(min_length=1, max_length=250)]
State = Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
# Only the approve and reject routes take a decision there, recording the token's user.
_PEOPLE_ONLY = ("approved", "rejected")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    kind: Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]
    message: str = Field(max_length=8000)
    details: dict[str, Any] = {}


class CreateDecision(_Body):
    policy: Name
    deployment: Name
    state: State
    context: dict[str, Any]
    event: EventIn


class Created(BaseModel):
    id: int


class Advance(_Body):
    expected_state: State
    expected_updated: int | None = Field(default=None, ge=0, le=2**63 - 1)
    state: State
    outcome: State | None = None
    context: dict[str, Any]
    event: EventIn


class Moved(BaseModel):
    moved: bool


class Count(BaseModel):
    count: int


class Reason(_Body):
    reason: str = Field(default="", max_length=8000)


class PolicyState(_Body):
    state: dict[str, Any]


class AcquireLease(_Body):
    holder: str = Field(min_length=1, max_length=250)
    seconds: float = Field(gt=0, le=86_400)


class Held(BaseModel):
    held: bool


class LeaseOut(BaseModel):
    holder: str
    expires: int


def _store(request: Request) -> Any:
    return request.app.state.automation


def _event(event: EventIn) -> tuple[str, str, dict[str, Any]]:
    return event.kind, event.message, event.details


def _approver(request: Request, decision_id: str) -> User:
    """A maintainer, or a maintainer the decision's deployment names."""
    deployment = None
    with suppress(ValueError, NotFound):  # only a maintainer may hear it does not exist
        deployment = _store(request).get_decision(int(decision_id)).deployment
    return maintainer_of(request, "deployment", deployment)


# -- decisions ------------------------------------------------------------------------------


@router.get("/decisions", response_model=list[DecisionRecord])
def list_decisions(
    request: Request,
    policy: str | None = None,
    open_only: bool = False,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """Decisions, newest first."""
    found = _store(request).list_decisions(policy=policy, open_only=open_only, limit=limit)
    return render(found, list[DecisionRecord])


@router.post("/decisions", response_model=Created, status_code=201, dependencies=_MAINTAINER)
def create_decision(body: CreateDecision, request: Request) -> Response:
    """A new decision with its first event (what the agent does when a trigger fires)."""
    if body.state in _PEOPLE_ONLY or body.event.kind in _PEOPLE_ONLY:
        raise InvalidArgument("A decision starts neither approved nor rejected.")
    new = _store(request).create_decision(
        body.policy, body.deployment, body.state, body.context, _event(body.event)
    )
    return render(Created(id=new), Created, 201)


@router.get("/decisions/count", response_model=Count)
def count_since(
    policy: str, since: Annotated[int, Query(ge=0, le=2**63 - 1)], request: Request
) -> Response:
    """How many decisions ``policy`` created since ``since`` (ms)."""
    return render(Count(count=_store(request).count_since(policy, since)), Count)


@router.get("/decisions/{decision_id}", response_model=DecisionRecord)
def get_decision(decision_id: Id, request: Request) -> Response:
    return render(_store(request).get_decision(decision_id), DecisionRecord)


@router.get("/decisions/{decision_id}/events", response_model=list[DecisionEvent])
def events(decision_id: Id, request: Request) -> Response:
    """The decision's audit trail, oldest first."""
    store = _store(request)
    store.get_decision(decision_id)  # NotFound rather than an empty story
    return render(store.events(decision_id), list[DecisionEvent])


@router.post("/decisions/{decision_id}/advance", response_model=Moved, dependencies=_MAINTAINER)
def advance(decision_id: Id, body: Advance, request: Request) -> Response:
    """Move the decision from ``expected_state`` to ``state`` with its event; ``moved`` is
    false when another writer moved it first. Approving and rejecting have routes of
    their own."""
    if body.state in _PEOPLE_ONLY or body.event.kind in _PEOPLE_ONLY:
        raise InvalidArgument(
            f"A decision is {body.event.kind} only by a person: POST "
            f"/api/v1/decisions/{decision_id}/approve or /reject."
        )
    moved = _store(request).advance(
        decision_id,
        body.expected_state,
        body.state,
        body.context,
        _event(body.event),
        outcome=body.outcome,
        expected_updated=body.expected_updated,
    )
    return render(Moved(moved=moved), Moved)


_APPROVER = [Depends(_approver)]


@router.post(
    "/decisions/{decision_id}/approve", response_model=DecisionRecord, dependencies=_APPROVER
)
def approve(decision_id: Id, body: Reason, request: Request) -> Response:
    """Let a decision waiting for approval roll out, as the token's user."""
    record = _store(request).approve(decision_id, user=current_user(), reason=body.reason)
    return render(record, DecisionRecord)


@router.post(
    "/decisions/{decision_id}/reject", response_model=DecisionRecord, dependencies=_APPROVER
)
def reject(decision_id: Id, body: Reason, request: Request) -> Response:
    """End a decision waiting for approval, as the token's user."""
    record = _store(request).reject(decision_id, user=current_user(), reason=body.reason)
    return render(record, DecisionRecord)


# -- policies and the lease -------------------------------------------------------------------


@router.get("/policies/{policy}/state", response_model=dict[str, Any])
def policy_state(policy: PathName, request: Request) -> Response:
    """The policy's watermarks: what each trigger saw last."""
    return render(_store(request).policy_state(policy), dict[str, Any])


@router.put("/policies/{policy}/state", status_code=204, dependencies=_MAINTAINER)
def set_policy_state(policy: PathName, body: PolicyState, request: Request) -> Response:
    _store(request).set_policy_state(policy, body.state)
    return Response(status_code=204)


@router.get("/leases/{name}", response_model=LeaseOut | None)
def lease_holder(name: PathName, request: Request) -> Response:
    """Who holds the lease now and until when (ms), or null."""
    held = _store(request).lease_holder(name)
    out = None if held is None else LeaseOut(holder=held[0], expires=held[1])
    return render(out, LeaseOut | None)


@router.post("/leases/{name}", response_model=Held, dependencies=_MAINTAINER)
def acquire_lease(name: PathName, body: AcquireLease, request: Request) -> Response:
    """Take or renew the lease for ``seconds``; ``held`` says whether ``holder`` has it."""
    held = _store(request).acquire_lease(name, body.holder, body.seconds)
    return render(Held(held=held), Held)


@router.delete("/leases/{name}", status_code=204, dependencies=_MAINTAINER)
def release_lease(
    name: PathName, holder: Annotated[str, Query(min_length=1, max_length=250)], request: Request
) -> Response:
    _store(request).release_lease(name, holder)
    return Response(status_code=204)
