"""The one reading of a duration, shared by ferry.yaml, policies, alert rules, data
expectations and the CLI: seconds as a number, or text such as ``90s``, ``30m``, ``30min``,
``6h``, ``1d``, ``2w`` or ``1d12h``."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from ferryml.errors import InvalidArgument

__all__ = ["DURATION_HELP", "parse_duration"]

DURATION_HELP = "seconds or a duration such as 90s, 30min, 6h, 1d or 1d12h"
_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_WHOLE = re.compile(rf"(?:{_PART.pattern}\s*)+")


def parse_duration(value: Any, *, positive: bool = False) -> float:
    """Seconds from a number of seconds, a ``timedelta`` or text like ``30min`` or
    ``1d12h`` (units s, m or min, h, d, w; spaces and case do not matter).

    Raises:
        InvalidArgument: it is none of these, or negative (or 0 with ``positive``); the
            message reads "must be …; got …." so that callers can name the field first.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.fullmatch(text := value.strip().lower()):
        parts = _PART.findall(text)
        if any(unit not in _UNITS for _, unit in parts):
            raise InvalidArgument(f"must be {DURATION_HELP}; got {value!r:.80}.")
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", value):
        seconds = float(value)
    else:
        raise InvalidArgument(f"must be {DURATION_HELP}; got {value!r:.80}.")
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        least = "above 0" if positive else "at least 0"
        raise InvalidArgument(f"must be {least} ({DURATION_HELP}); got {value!r:.80}.")
    return seconds
