"""The one rule for the names users give things: models, datasets, policies, schedules,
monitors and alert rules."""

from __future__ import annotations

import re
from typing import Any

from ferryml.errors import InvalidArgument

__all__ = ["NAME_HELP", "check_name", "is_name"]

NAME_HELP = "1 to 250 letters, digits, _ . and -, not starting with . or -"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}")


def is_name(value: Any, *, paths: bool = False) -> bool:
    """Whether ``value`` keeps the rule; with ``paths``, ``/``-separated names of that
    rule (``images/train``) are names too, as datasets are named after their paths."""
    if not isinstance(value, str):
        return False
    parts = value.split("/") if paths else [value]
    return len(value) <= 250 and all(_NAME.fullmatch(p) for p in parts)


def check_name(value: Any, what: str, example: str, *, paths: bool = False) -> str:
    """``value`` if it keeps the rule.

    Raises:
        InvalidArgument: it does not, e.g. "Model name '' is invalid: use 1 to 250 letters,
            … e.g. 'churn'."
    """
    if not is_name(value, paths=paths):
        also = " (and / between parts)" if paths else ""
        raise InvalidArgument(
            f"{what} name {value!r:.80} is invalid: use {NAME_HELP}{also}, e.g. {example!r}."
        )
    return str(value)
