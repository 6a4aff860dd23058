"""Users and API tokens. Admins manage users and anyone's tokens; a user sees, creates and
revokes their own tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import PermissionDenied
from ferryml.server.team._auth import current, needs
from ferryml.server.team._render import render
from ferryml.server.team._schemas import CreatedToken, CreateToken, CreateUser, UpdateUser
from ferryml.store.entities import Role, Token, User

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["users"])
_ADMIN = [needs(Role.ADMIN)]


def _users(request: Request) -> Any:
    users = request.app.state.users
    if users is None:
        raise PermissionDenied("This server runs without auth (--no-auth): it has no users.")
    return users


@router.get("/whoami", response_model=User)
def whoami(request: Request) -> Response:
    return render(current(request), User)


@router.get("/users", response_model=list[User], dependencies=_ADMIN)
def list_users(request: Request) -> Response:
    return render(_users(request).list_users(), list[User])


@router.post("/users", response_model=User, status_code=201, dependencies=_ADMIN)
def create_user(body: CreateUser, request: Request) -> Response:
    return render(_users(request).create_user(body.name, body.role), User, 201)


@router.patch("/users/{name}", response_model=User, dependencies=_ADMIN)
def update_user(name: str, body: UpdateUser, request: Request) -> Response:
    user = _users(request).update_user(name, role=body.role, disabled=body.disabled)
    request.app.state.auth.forget()
    return render(user, User)


def _may_manage(request: Request, owner: str) -> None:
    me = current(request)
    if me.name != owner and not me.role.allows(Role.ADMIN):
        raise PermissionDenied(
            f"User {me.name!r} may manage only their own tokens; this needs admin."
        )


@router.get("/tokens", response_model=list[Token])
def list_tokens(request: Request) -> Response:
    me = current(request)
    owner = None if me.role.allows(Role.ADMIN) else me.name
    return render(_users(request).list_tokens(owner), list[Token])


@router.post("/tokens", response_model=CreatedToken, status_code=201)
def create_token(body: CreateToken, request: Request) -> Response:
    owner = body.user or current(request).name
    _may_manage(request, owner)
    token, secret = _users(request).create_token(owner, body.label)
    created = CreatedToken(token_id=token.token_id, user=owner, token=secret)
    return render(created, CreatedToken, 201)


@router.delete("/tokens/{token_id}", response_model=Token)
def revoke_token(token_id: str, request: Request) -> Response:
    users = _users(request)
    _may_manage(request, users.get_token(token_id).user)
    token = users.revoke_token(token_id)
    request.app.state.auth.forget()
    return render(token, Token)


@router.get("/maintainers/{kind}/{name}", response_model=list[str])
def list_maintainers(kind: str, name: str, request: Request) -> Response:
    return render(_users(request).list_maintainers(kind, name), list[str])


@router.put("/maintainers/{kind}/{name}/{user}", status_code=204, dependencies=_ADMIN)
def add_maintainer(kind: str, name: str, user: str, request: Request) -> Response:
    """Name ``user`` a maintainer of model or deployment ``name``."""
    _users(request).add_maintainer(kind, name, user)
    return Response(status_code=204)


@router.delete("/maintainers/{kind}/{name}/{user}", status_code=204, dependencies=_ADMIN)
def remove_maintainer(kind: str, name: str, user: str, request: Request) -> Response:
    _users(request).remove_maintainer(kind, name, user)
    return Response(status_code=204)
