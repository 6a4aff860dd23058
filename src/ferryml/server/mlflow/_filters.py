"""MLflow's filter strings for experiments, registered models, model versions and logged
models (few enough to filter in Python): clauses joined by AND, each ``FIELD OP VALUE``,
where FIELD is an attribute or ``tags.KEY`` (``tag.`a.b```), OP one of ``= != < <= > >=
LIKE ILIKE IN NOT IN``. Runs are searched in the store with ferryml's own parser."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ferryml.errors import InvalidArgument

__all__ = ["Clause", "matches", "order", "parse"]

Clause = tuple[str, str, str, Any]  # kind ("attribute" | "tag"), key, op, value

_CLAUSE = re.compile(
    r"""\s*(?P<field>(?:(?P<prefix>[A-Za-z_]+)\.)?(?P<key>`[^`]+`|"[^"]+"|[A-Za-z0-9_.\-]+))\s*
    (?P<op>!=|<>|<=|>=|==|=|<|>|\bNOT\s+IN\b|\bIN\b|\bNOT\s+LIKE\b|\bLIKE\b|\bILIKE\b)\s*
    (?P<value>'(?:[^']|'')*'|"(?:[^"]|"")*"|\([^)]*\)|[-+0-9.eE]+)\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
_TAG_PREFIXES = ("tags", "tag")
_ATTRIBUTE_PREFIXES = ("attributes", "attribute", "attr")


def parse(text: str | None, attributes: Sequence[str]) -> list[Clause]:
    """The clauses of ``text``; ``attributes`` are the fields this search knows.

    Raises:
        InvalidArgument: the text is not a filter of that form.
    """
    if not text or not text.strip():
        return []
    clauses: list[Clause] = []
    for part in _split_and(text):
        found = _CLAUSE.fullmatch(part)
        if found is None:
            raise InvalidArgument(
                f"Invalid filter {part.strip()!r}: write FIELD OP VALUE, e.g. name = 'x' or "
                "tags.team LIKE 'ml%', with OP one of = != < <= > >= LIKE ILIKE IN."
            )
        key = found["key"].strip('`"')
        prefix = (found["prefix"] or "").lower()
        if prefix in _TAG_PREFIXES:
            kind = "tag"
        elif prefix in ("", *_ATTRIBUTE_PREFIXES) and key in attributes:
            kind = "attribute"
        else:
            known = ", ".join(attributes)
            raise InvalidArgument(
                f"Invalid filter field {found['field']!r}: use tags.KEY or one of {known}."
            )
        op = " ".join(found["op"].upper().split()).replace("==", "=").replace("<>", "!=")
        clauses.append((kind, key, op, _value(found["value"])))
    return clauses


def _split_and(text: str) -> list[str]:
    """Split on AND outside quotes."""
    parts, start, quote = [], 0, ""
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif _AND.match(text, index) and (index == 0 or text[index].isspace()):
            match = _AND.match(text, index)
            assert match is not None
            parts.append(text[start:index])
            start = match.end()
    parts.append(text[start:])
    return [p for p in parts if p.strip()] if start else [text]


def _value(text: str) -> Any:
    if text.startswith("("):
        return tuple(_value(v.strip()) for v in text[1:-1].split(",") if v.strip())
    if text[0] in "'\"":
        return text[1:-1].replace(text[0] * 2, text[0])
    try:
        return float(text)
    except ValueError as e:
        raise InvalidArgument(f"Invalid filter value {text!r}: quote strings.") from e


def _like(pattern: str, value: str, ignore_case: bool) -> bool:
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.fullmatch(body, value, flags) is not None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if actual is None:
        return op == "!="
    if op in ("IN", "NOT IN"):
        inside = str(actual) in {str(e) for e in expected}
        return inside if op == "IN" else not inside
    if op in ("LIKE", "ILIKE", "NOT LIKE"):
        hit = _like(str(expected), str(actual), op == "ILIKE")
        return not hit if op == "NOT LIKE" else hit
    if isinstance(expected, float):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    else:
        actual = str(actual)
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return checks[op](actual, expected)


def matches(
    clauses: Sequence[Clause], attributes: Mapping[str, Any], tags: Mapping[str, str]
) -> bool:
    for kind, key, op, expected in clauses:
        actual = attributes.get(key) if kind == "attribute" else tags.get(key)
        if not _compare(op, actual, expected):
            return False
    return True


def order(
    items: list[Any],
    order_by: Sequence[str] | None,
    key_of: Callable[[Any, str], Any],
    fields: Mapping[str, str] | None = None,
) -> list[Any]:
    """Sort ``items`` by ``order_by`` ("FIELD [ASC|DESC]", the last the least significant).
    ``fields`` maps the names MLflow takes to those ``key_of`` knows; others are refused.

    Raises:
        InvalidArgument: a direction other than ASC or DESC, or a field not in ``fields``.
    """
    keys = [_order_key(item, fields) for item in order_by or ()]
    for field, descending in reversed(keys):
        items = sorted(items, key=lambda x: _sort_key(key_of(x, field)), reverse=descending)
    return items


def _order_key(item: str, fields: Mapping[str, str] | None) -> tuple[str, bool]:
    field, _, direction = item.strip().partition(" ")
    entity, dot, name = field.partition(".")
    if dot:  # MLflow takes an attribute's prefix here, and refuses tags' and metrics'
        if entity.strip('`"').lower() not in ("attribute", "attributes", "attr", "run"):
            raise InvalidArgument(
                f"Invalid order_by {item!r}: only attributes order these results."
            )
        field = name
    field = field.strip('`"')
    direction = direction.strip().upper()
    if direction not in ("", "ASC", "DESC"):
        raise InvalidArgument(f"Invalid order_by {item!r}: the direction is ASC or DESC.")
    if fields is not None:
        if field not in fields:
            raise InvalidArgument(
                f"Invalid order_by key {field!r}: order by one of {', '.join(fields)}."
            )
        field = fields[field]
    return field, direction == "DESC"


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, 0)
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))
