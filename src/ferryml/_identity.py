"""Who is acting: recorded on runs, registry events and deployment changes.

On the team server the authenticated user acts (set per request with ``acting_as``); in a
local process, the operating system's user does.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_acting: ContextVar[str | None] = ContextVar("ferry_acting_user", default=None)


def current_user() -> str:
    acting = _acting.get()
    if acting is not None:
        return acting
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def acting_as(user: str) -> Iterator[None]:
    """Record ``user`` as who acts, for the code run inside (this thread or task)."""
    token = _acting.set(user)
    try:
        yield
    finally:
        _acting.reset(token)
