"""What every page of the web UI shares: templates, who is looking, the navigation.

Adding a page: a module in ``ferryml/ui/pages/`` with a ``router`` (an ``APIRouter``
whose routes return ``render(request, "NAME.html", ...)``) and, to appear in the
navigation, ``NAV = Nav("Label", "/path", order)``; a template ``templates/NAME.html``
extending ``base.html``; and, for what the page fetches, ``static/NAME.js`` named in the
template's ``scripts`` block. ``include_ui`` finds the module by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from ferryml.store.entities import Role, User

__all__ = ["Nav", "SignInNeeded", "Viewer", "error_page", "is_page", "render", "viewer"]

# Scripts and styles come from this server alone; an artifact's HTML is shown sandboxed.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)


@dataclass(frozen=True)
class Nav:
    """A page's place in the navigation bar: its label, path, and order from the left."""

    label: str
    path: str
    order: int = 50


class SignInNeeded(Exception):
    """Raised by ``viewer`` when no one is signed in; answered with the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def viewer(request: Request) -> User:
    """The signed-in user (set by the team server's ``Auth`` middleware from the cookie)."""
    user: User | None = getattr(request.state, "user", None)
    if user is None:
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(url)
    return user


Viewer = Annotated[User, Depends(viewer)]


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ferryml.ui", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlquote"] = lambda value: quote(str(value), safe="")
    env.filters["num"] = _number
    return env


def _number(value: Any) -> str:
    """Six significant digits for floats, as the runs table shows them."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    return str(value)


def render(
    request: Request,
    template: str,
    *,
    title: str,
    data: dict[str, Any] | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    """The page ``template`` for the signed-in user; ``data`` reaches its script as JSON
    (``pageData()`` in ``static/ferry.js``)."""
    user: User | None = getattr(request.state, "user", None)
    role = user.role if user is not None else Role.READER
    page = {
        "user": user.name if user else None,
        "role": role.value,
        "can_write": role.allows(Role.WRITER),
        "can_maintain": role.allows(Role.MAINTAINER),
        **(data or {}),
    }
    html = (
        _environment()
        .get_template(template)
        .render(
            title=title,
            user=user,
            can_write=page["can_write"],
            can_maintain=page["can_maintain"],
            auth=request.app.state.auth.enabled,
            nav=request.app.state.ui_nav,
            path=request.url.path,
            page_json=json.dumps(page).replace("</", "<\\/"),
            **context,
        )
    )
    return HTMLResponse(html, status, headers={"Content-Security-Policy": CSP})


def is_page(path: str) -> bool:
    """Whether ``path`` is the web UI's (answered in HTML), not the API's (in JSON)."""
    return not path.startswith(("/api/", "/ajax-api/", "/static/", "/health", "/v1/", "/v2/"))


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page, with the same one-line message the API would send."""
    if not hasattr(request.app.state, "ui_nav"):
        request.app.state.ui_nav = []
    return render(request, "error.html", title="Error", status=status, message=message)
