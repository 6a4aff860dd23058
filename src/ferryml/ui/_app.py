"""The web UI mounted on the team server: static files, pages, signing in and out."""

from __future__ import annotations

import importlib
import pkgutil
import threading
import webbrowser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument
from ferryml.server.team._auth import SESSION_COOKIE, session_token
from ferryml.store.sql_users import SESSION_LABEL
from ferryml.ui import pages
from ferryml.ui._pages import Nav, SignInNeeded, render

__all__ = ["include_ui", "serve_ui"]

router = APIRouter(include_in_schema=False)


def include_ui(app: FastAPI) -> None:
    """Add the web UI's pages (every module of ``ferryml.ui.pages``) to ``app``."""
    app.mount("/static", StaticFiles(packages=[("ferryml.ui", "static")]), name="static")
    nav: list[Nav] = []
    for module in pkgutil.iter_modules(pages.__path__):
        page = importlib.import_module(f"{pages.__name__}.{module.name}")
        app.include_router(page.router, include_in_schema=False)
        if isinstance(getattr(page, "NAV", None), Nav):
            nav.append(page.NAV)
    app.state.ui_nav = sorted(nav, key=lambda n: (n.order, n.label))
    app.include_router(router)

    @app.exception_handler(SignInNeeded)
    async def sign_in_first(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(f"/signin?next={_quote(exc.next_url)}", status_code=303)


@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    return render(request, "signin.html", title="Sign in", next=_local(next), error=None)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check a user's name and token, and open a session: a token of its own, kept in an
    HttpOnly cookie, revoked when the user signs out and refused once it is older than the
    server's ``--session-hours``."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    name, token, next_url = form.get("user", "").strip(), form.get("token", "").strip(), "/"
    next_url = _local(form.get("next", "/"))
    users = request.app.state.users
    if users is None:  # no auth: everyone acts as the local admin
        return RedirectResponse(next_url, status_code=303)
    try:
        user = await run_in_threadpool(lambda: users.authenticate(token, sessions=False))
        if user.name != name:
            raise InvalidArgument("not this user's token")
        _, secret = await run_in_threadpool(users.create_token, user.name, SESSION_LABEL)
    except FerryError:
        message = (
            "That user name and token do not match an active user. Ask an admin for a token: "
            "ferry server user add NAME --role reader"
        )
        page = render(request, "signin.html", title="Sign in", next=next_url, error=message)
        page.status_code = 401
        return page
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=request.app.state.session_seconds,
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    token = session_token(dict(request.scope["headers"]))
    users = request.app.state.users
    if token is not None and users is not None:
        token_id = token.split("_")[1] if token.count("_") >= 2 else ""
        try:
            await run_in_threadpool(users.revoke_token, token_id)
            request.app.state.auth.forget()
        except FerryError:
            pass  # revoked already, or not a session token: the cookie goes anyway
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _local(url: str) -> str:
    """``url`` if it stays on this server, else ``/``: a sign-in must not lead elsewhere."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//"):
        return "/"
    return url


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="/")


def serve_ui(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 5050, browser: bool = True
) -> None:
    """Serve the web UI over the local stores of ``settings`` on a loopback address, with
    no sign-in (everyone who can reach a loopback address acts as the local admin), and
    open it in the browser unless ``browser`` is false."""
    from ferryml.server.team.app import check_bind, serve_team

    check_bind(host, port, auth=False)
    if browser:
        url = f"http://{host}:{port}/"
        threading.Timer(1.0, _open, args=(url,)).start()
    serve_team(settings, host=host, port=port, auth=False)


def _open(url: str) -> Any:
    return webbrowser.open(url)
