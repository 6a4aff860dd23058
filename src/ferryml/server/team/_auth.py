"""Who is asking, and may they: tokens on every ``/api/`` request, roles per route.

Reading (GET, HEAD) needs the reader role and anything else the writer role, checked
here for every route; routes that need more say so with ``needs``. A plain ASGI
middleware, so the authenticated user is also who the core records as acting.

The web UI's pages send the token of a session cookie instead of a header; a change sent
with the cookie must also carry ``X-Ferry-UI``, which no other site's form can set.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ferryml._identity import acting_as
from ferryml.errors import FerryError, PermissionDenied, Unauthenticated
from ferryml.server._errors import error_response, status_of
from ferryml.store.entities import Role, User
from ferryml.store.sql_users import SqlUserStore

__all__ = [
    "READ_POSTS",
    "SESSION_COOKIE",
    "UI_HEADER",
    "Auth",
    "maintainer_of",
    "needs",
    "needs_maintainer_of",
    "session_token",
]

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# Reads sent as POST because their query does not fit a URL (MLflow's searches too).
READ_POSTS = frozenset(
    {"/api/v1/runs/search"}
    | {
        f"{base}/mlflow/{path}"
        for base in ("/api/2.0", "/ajax-api/2.0")
        for path in ("runs/search", "experiments/search", "logged-models/search")
    }
    | {
        f"{base}/mlflow/registered-models/get-latest-versions"
        for base in ("/api/2.0", "/ajax-api/2.0")
    }
)
ErrorRenderer = Callable[[str, FerryError], Any]  # (path, error) -> an ASGI response
_CACHE_SECONDS = 2.0  # how long a revoked token may still pass on another worker
SESSION_COOKIE = "ferry_session"
UI_HEADER = "x-ferry-ui"


class Auth:
    """Authenticates ``/api/`` requests against ``state.users`` (opened when the app
    starts); when not ``enabled``, every request acts as ``anonymous``."""

    def __init__(
        self,
        app: Any,
        state: Any,
        enabled: bool,
        anonymous: User,
        render: ErrorRenderer | None = None,
        session_seconds: float | None = None,
    ) -> None:
        self.app = app
        self.session_seconds = session_seconds  # a session cookie's token expires after
        self.state = state
        self.enabled = enabled
        self.anonymous = anonymous
        self.render = render or _render
        self._cache: dict[str, tuple[float, User]] = {}
        state.auth = self

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not scope["path"].startswith(("/api/", "/ajax-api/")):
            # A page of the web UI: who is signed in, if anyone; the page decides.
            scope.setdefault("state", {})["user"] = await self._page_user(headers)
            await self.app(scope, receive, send)
            return
        try:
            header = headers.get(b"authorization")
            cookie = session_token(headers) if header is None else None
            # Sessions expire however their token is sent, in the cookie or as a Bearer.
            sent = header if cookie is None else b"Bearer " + cookie.encode()
            user = await self._user(sent, self.session_seconds)
            reads = scope["method"] in _SAFE or scope["path"] in READ_POSTS
            if cookie is not None and not reads and UI_HEADER.encode() not in headers:
                raise PermissionDenied(
                    f"A change sent with the web UI's session cookie needs the {UI_HEADER} "
                    "header; scripts send 'Authorization: Bearer <token>' instead."
                )
            if not user.role.allows(Role.READER if reads else Role.WRITER):
                needed = "reader" if reads else "writer"
                raise PermissionDenied(
                    f"User {user.name!r} has the role {user.role.value}; this needs "
                    f"{needed}. Ask an admin: ferry server user set-role {user.name} {needed}"
                )
        except FerryError as e:
            await self.render(scope["path"], e)(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        with acting_as(user.name):
            await self.app(scope, receive, send)

    async def _page_user(self, headers: dict[bytes, bytes]) -> User | None:
        if not self.enabled:
            return self.anonymous
        header = headers.get(b"authorization")
        token = session_token(headers)
        if header is None and token is None:
            return None
        try:
            sent = header if header is not None else b"Bearer " + str(token).encode()
            return await self._user(sent, self.session_seconds)
        except FerryError:  # revoked, expired or disabled: signed out
            return None

    async def _user(self, header: bytes | None, max_age_s: float | None = None) -> User:
        if not self.enabled:
            return self.anonymous
        token, name = _token_of(header)
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            user = cached[1]
        else:
            user = await run_in_threadpool(
                lambda: self.state.users.authenticate(token, max_age_s=max_age_s)
            )
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now + _CACHE_SECONDS, user)
        if name and name != user.name:
            raise Unauthenticated(
                f"The user name {name!r} does not match the token's user; send the token's "
                "own user name (MLFLOW_TRACKING_USERNAME), or none."
            )
        return user

    def forget(self) -> None:
        """Drop cached tokens (after a revoke or a role change on this worker)."""
        self._cache.clear()


def session_token(headers: dict[bytes, bytes]) -> str | None:
    """The token of the web UI's session cookie among request ``headers``, if any."""
    raw = headers.get(b"cookie")
    if not raw:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(raw.decode("latin-1"))
    except CookieError:
        return None
    morsel = cookies.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _render(path: str, error: FerryError) -> Any:
    return error_response(status_of(error), str(error), type(error).__name__)


def _token_of(header: bytes | None) -> tuple[str, str]:
    """The token and, from Basic credentials, the user name that came with it."""
    if not header:
        raise Unauthenticated(
            "No token: send 'Authorization: Bearer <token>'. Clients read FERRY_TOKEN; "
            "create a token with `ferry token create`."
        )
    scheme, _, value = header.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip(), ""
    if scheme.lower() == "basic":  # MLflow's clients send user:token this way
        try:
            name, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError as e:
            raise Unauthenticated("The Basic credentials are not valid base64.") from e
        return password, name
    raise Unauthenticated(f"Unsupported authorization scheme {scheme!r}; use Bearer.")


def current(request: Request) -> User:
    user: User = request.state.user
    return user


def needs(role: Role) -> Any:
    """A route dependency: the user must have at least ``role``."""

    def check(request: Request) -> User:
        user = current(request)
        if not user.role.allows(role):
            raise PermissionDenied(
                f"User {user.name!r} has the role {user.role.value}; this needs {role.value}."
            )
        return user

    return Depends(check)


def needs_maintainer_of(kind: str) -> Any:
    """A route dependency: a maintainer, or a user the model or deployment (the route's
    ``name``) names as one of its own maintainers."""

    def check(request: Request, name: str) -> User:
        return maintainer_of(request, kind, name)

    return Depends(check)


def maintainer_of(request: Request, kind: str, name: str | None) -> User:
    """The user, if a maintainer or one of those the model or deployment ``name`` names
    (None: no such thing, so only a maintainer).

    Raises:
        PermissionDenied: neither.
    """
    user = current(request)
    if user.role.allows(Role.MAINTAINER):
        return user
    users: SqlUserStore | None = request.app.state.users
    if name is not None and users is not None and user.name in users.list_maintainers(kind, name):
        return user
    of = "" if name is None else f" and is not a maintainer of {kind} {name!r}"
    raise PermissionDenied(
        f"User {user.name!r} has the role {user.role.value}{of}; this needs maintainer."
    )
