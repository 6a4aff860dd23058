"""One fork hook for the whole process.

Objects that must renew state in a forked child (an engine's pooled connections, a
journal's file and locks) are listed here, held weakly, instead of each registering its own
``os.register_at_fork`` callback: those can never be removed, so a server that opens a store
per request would pile them up for as long as it runs.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renew_after_fork"]

T = TypeVar("T")

# Process-wide by nature, as os.register_at_fork is; a collected object drops out by itself.
_RENEW: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def renew_after_fork(obj: T, renew: Callable[[T], None]) -> None:
    """Call ``renew(obj)`` in every child forked while ``obj`` is alive. ``renew`` must not
    hold ``obj`` itself (a module-level function does not), or ``obj`` is never freed."""
    _register_once()
    _RENEW[obj] = renew


@functools.cache
def _register_once() -> None:
    os.register_at_fork(after_in_child=_renew_all)


def _renew_all() -> None:
    for obj, renew in list(_RENEW.items()):
        renew(obj)
