"""Checks on what users log. Each failure says what was wrong and what is allowed."""

from __future__ import annotations

import functools
import math
import numbers
import re
from typing import Any

from ferryml.errors import InvalidArgument

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_KEY = re.compile(r"[A-Za-z0-9_\-. /:]+")
_ALLOWED = "letters, digits, spaces and _ - . / :"


def check_key(key: Any, what: str) -> str:
    if type(key) is not str:
        raise InvalidArgument(f"{what} key {key!r} is a {type(key).__name__}; keys are strings.")
    return _check_key(key, what)


@functools.lru_cache(maxsize=4096)  # most programs log the same few keys, over and over
def _check_key(key: str, what: str) -> str:
    problem = None
    if not key:
        problem = "keys may not be empty"
    elif len(key) > MAX_KEY:
        problem = f"keys are at most {MAX_KEY} characters, this one has {len(key)}"
    elif not _KEY.fullmatch(key):
        bad = next(c for c in key if not _KEY.fullmatch(c))
        problem = f"{bad!r} is not allowed; use {_ALLOWED}"
    elif key.startswith("/"):
        problem = "keys may not start with '/'"
    elif ".." in key.split("/") or ".." in key:
        problem = "keys may not contain '..'"
    if problem:
        raise InvalidArgument(f"Invalid {what} key {key!r}: {problem}.")
    return key


def check_metric_value(key: str, value: Any) -> float:
    kind = type(value)
    if kind is float:
        return float(value)
    if kind is int:
        return float(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise InvalidArgument(
        f"Metric {key!r} got {value!r} ({kind.__name__}); metric values must be numbers. "
        "Log text with log_param or set_tag instead."
    )


def _fits_int64(number: Any) -> bool:  # what the stores' BIGINT columns hold
    return bool(-(2**63) <= number < 2**63)


def check_step(key: str, step: Any) -> int:
    if step is None:
        return 0
    if isinstance(step, numbers.Integral) and not isinstance(step, bool) and _fits_int64(step):
        return int(step)
    raise InvalidArgument(
        f"Metric {key!r} got step {step!r}; steps are whole numbers of at most 64 bits."
    )


def check_timestamp(key: str, timestamp: Any) -> int:
    if isinstance(timestamp, numbers.Integral) and not isinstance(timestamp, bool):
        if _fits_int64(timestamp):
            return int(timestamp)
    elif isinstance(timestamp, float) and math.isfinite(timestamp) and _fits_int64(timestamp):
        return int(timestamp)
    raise InvalidArgument(
        f"Metric {key!r} got timestamp {timestamp!r}; timestamps are milliseconds since "
        "the epoch, as whole numbers."
    )


def check_value(key: str, value: Any, what: str, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidArgument(
            f"{what} {key!r} has a value of {len(text)} characters; the limit is {limit}. "
            "Log long text as an artifact with log_text."
        )
    if "\x00" in text:
        raise InvalidArgument(f"{what} {key!r} has a NUL character in its value; remove it.")
    return text


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-f]{32}", run_id):
        raise InvalidArgument(
            f"Run id {run_id!r} is malformed: run ids are 32 lowercase hex characters. "
            "See `ferry runs list`."
        )
    return run_id


def check_artifact_path(path: str) -> str:
    """Artifact paths are relative, '/'-separated, with no '..'."""
    clean = path.replace("\\", "/").strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..") for p in parts) or path.startswith("/"):
        raise InvalidArgument(
            f"Invalid artifact path {path!r}: use a relative path such as 'plots/roc.png', "
            "without '..' or a leading '/'."
        )
    if any(ord(c) < 32 for c in clean):
        raise InvalidArgument(f"Invalid artifact path {path!r}: control characters.")
    return clean
