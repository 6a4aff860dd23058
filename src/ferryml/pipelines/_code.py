"""A step's code digest: its own source and that of the project functions it calls, so
editing a helper re-runs the steps that use it, and nothing else."""

from __future__ import annotations

import inspect
import sys
import sysconfig
import types
from functools import lru_cache
from typing import Any

import blake3

_LIBRARY_PATHS = tuple(
    p
    for p in {
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        sysconfig.get_paths()["stdlib"],
    }
    if p
)


def code_digest(fn: Any) -> str:
    hasher = blake3.blake3()
    for source in sorted(_sources(fn, set())):
        hasher.update(source.encode())
    return hasher.hexdigest()


def _sources(fn: Any, seen: set[int]) -> set[str]:
    if id(fn) in seen:
        return set()
    seen.add(id(fn))
    found = {_source(fn)}
    code = getattr(fn, "__code__", None)
    namespace = getattr(fn, "__globals__", {})
    for name in _names(code) if code is not None else ():
        value = namespace.get(name)
        value = getattr(value, "fn", value)  # a Step calls its function
        if isinstance(value, (types.FunctionType, type)) and _in_project(value):
            found |= _sources(value, seen)
    return found


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


@lru_cache(maxsize=1024)
def _source(fn: Any) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # built in, or defined where no source is kept
        return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def _in_project(value: Any) -> bool:
    module = sys.modules.get(getattr(value, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if path is None or module is None or module.__name__.startswith("ferryml."):
        return False
    return not path.startswith(_LIBRARY_PATHS)
