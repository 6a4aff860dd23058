"""The run-search language: filter strings and order-by items, parsed into a small AST.

Grammar (keywords are case-insensitive; AND binds tighter than OR)::

    filter      := or_expr
    or_expr     := and_expr ("OR" and_expr)*
    and_expr    := primary ("AND" primary)*
    primary     := "(" or_expr ")" | comparison
    comparison  := identifier operator
    identifier  := prefix "." key | attribute
    prefix      := metrics | params | tags | attributes  (or metric, param, tag,
                   attribute, attr, run)
    key         := [A-Za-z0-9_\\-./:]+ | `back quoted` | "double quoted"
    operator    := ("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") value
                 | ["NOT"] "LIKE" value | "ILIKE" value | ["NOT"] "IN" "(" value ("," value)* ")"
                 | "IS" ["NOT"] "NULL"
    value       := 'single quoted' | "double quoted" | number

Inside quotes a quote is written twice ('it''s') or after a backslash ('it\\'s'), and
``\\\\`` is one backslash. In LIKE patterns ``%`` and ``_`` are wildcards and a
backslash makes the next character literal (``'50\\%'``).

Which operators and values fit which identifier is checked here, so a store only ever
translates well-typed comparisons.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn, TypeAlias

from ferryml.errors import InvalidArgument

__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Expr",
    "Kind",
    "Or",
    "OrderKey",
    "parse_filter",
    "parse_order_by",
]

Kind = Literal["metric", "param", "tag", "attribute"]


@dataclass(frozen=True)
class Comparison:
    """``<kind>.<key> <op> <value>``; ``value`` is None for IS [NOT] NULL, a tuple for
    [NOT] IN, a float for numbers and a str otherwise (an experiment id is a str of digits).
    """

    kind: Kind
    key: str
    op: str
    value: str | float | tuple[str, ...] | None


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr: TypeAlias = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    kind: Kind
    key: str
    ascending: bool = True


_PREFIXES: dict[str, Kind] = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute",
    "run": "attribute",
}  # fmt: skip
_PLURAL: dict[Kind, str] = {"metric": "metrics", "param": "params", "tag": "tags"}

_NUMERIC = ("=", "!=", "<", "<=", ">", ">=")
_STRING = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "IN", "NOT IN")
_NULLS = ("IS NULL", "IS NOT NULL")
_EQUALITY = ("=", "!=", "IN", "NOT IN")

# attribute name -> (operators, value type)
_ATTRIBUTE_RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "run_id": (_STRING, "string"),
    "run_name": (_STRING, "string"),
    "user": (_STRING, "string"),
    "parent_run_id": (_STRING + _NULLS, "string"),
    "status": (_EQUALITY, "status"),
    "experiment_id": (_EQUALITY, "experiment_id"),
    "start_time": (_NUMERIC, "integer"),
    "end_time": (_NUMERIC + _NULLS, "integer"),
}
#: Attribute names a filter or order-by may use, by their canonical name.
ATTRIBUTES: tuple[str, ...] = tuple(_ATTRIBUTE_RULES)
_ATTRIBUTE_ALIASES = {name: name for name in ATTRIBUTES} | {"user_id": "user"}
_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")

_KEYWORDS = frozenset({"AND", "OR", "NOT", "LIKE", "ILIKE", "IN", "IS", "NULL"})
_OP_ALIASES = {"==": "=", "<>": "!="}
_OPERATORS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")  # longest first
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"[A-Za-z0-9_\-./:]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DEPTH = 50

_FILTER_EXAMPLE = "metrics.acc > 0.9 and params.model = 'rf'"
_ORDER_EXAMPLE = "metrics.acc DESC"
_IDENTIFIER = "an identifier such as metrics.KEY, params.KEY, tags.KEY or an attribute"


class _SyntaxError(Exception):
    def __init__(self, pos: int, problem: str, expected: str) -> None:
        super().__init__(problem)
        self.pos, self.problem, self.expected = pos, problem, expected


@dataclass(frozen=True)
class _Token:
    kind: str  # IDENT WORD STRING NUMBER OP ( ) , CHAR END
    text: str
    pos: int
    value: str | float = ""
    ident_kind: Kind = "attribute"

    def describe(self) -> str:
        if self.kind == "END":
            return "end of input"
        if self.kind == "STRING":
            return f"string {self.text}"
        if self.kind == "NUMBER":
            return f"number {self.text}"
        return f"'{self.text}'"


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The unescaped content of the quoted text at ``start`` and the index after it."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and text[i + 1 : i + 2] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif c == quote and text[i + 1 : i + 2] == quote:
            out.append(quote)
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    what = "key" if quote == "`" else "string"
    raise _SyntaxError(start, f"unterminated {what}", f"a closing {quote}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "'\"":
            value, end = _read_quoted(text, i)
            tokens.append(_Token("STRING", text[i:end], i, value))
            i = end
        elif number := _NUMBER.match(text, i):
            tokens.append(_Token("NUMBER", number.group(), i, float(number.group())))
            i = number.end()
        elif word := _WORD.match(text, i):
            end = word.end()
            if text[end : end + 1] != ".":
                tokens.append(_Token("WORD", word.group(), i, word.group()))
                i = end
                continue
            kind = _PREFIXES.get(word.group().lower())
            if kind is None:
                raise _SyntaxError(
                    i,
                    f"unknown prefix '{word.group()}'",
                    "metrics, params, tags or attributes before the dot",
                )
            key_start = end + 1
            if text[key_start : key_start + 1] in ("`", '"'):
                key, i = _read_quoted(text, key_start)
            elif match := _KEY.match(text, key_start):
                key, i = match.group(), match.end()
            else:
                raise _SyntaxError(key_start, f"missing key after '{word.group()}.'", "a key")
            if not key:
                raise _SyntaxError(key_start, "empty key", "a key")
            tokens.append(_Token("IDENT", text[word.start() : i], word.start(), key, kind))
        elif op := next((o for o in _OPERATORS if text.startswith(o, i)), None):
            tokens.append(_Token("OP", op, i))
            i += len(op)
        elif c in "(),":
            tokens.append(_Token(c, c, i))
            i += 1
        else:
            tokens.append(_Token("CHAR", c, i))
            i += 1
    tokens.append(_Token("END", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def keyword(self, token: _Token | None = None) -> str:
        token = token or self.peek()
        return token.text.upper() if token.kind == "WORD" else ""

    def fail(self, token: _Token, expected: str, problem: str = "") -> NoReturn:
        raise _SyntaxError(token.pos, problem or f"unexpected {token.describe()}", expected)

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.keyword() == "OR":
            self.advance()
            items.append(self.parse_and())
        return _combine(Or, items)

    def parse_and(self) -> Expr:
        items = [self.parse_primary()]
        while self.keyword() == "AND":
            self.advance()
            items.append(self.parse_primary())
        return _combine(And, items)

    def parse_primary(self) -> Expr:
        token = self.peek()
        if token.kind != "(":
            return self.parse_comparison()
        if self.depth >= _MAX_DEPTH:
            self.fail(token, "fewer levels", f"parentheses nested more than {_MAX_DEPTH} deep")
        self.advance()
        self.depth += 1
        expr = self.parse_or()
        if self.peek().kind != ")":
            self.fail(self.peek(), "AND, OR or ')'")
        self.advance()
        self.depth -= 1
        return expr

    def parse_identifier(self) -> tuple[Kind, str]:
        token = self.advance()
        if token.kind == "IDENT" and token.ident_kind != "attribute":
            return token.ident_kind, str(token.value)
        if token.kind not in ("IDENT", "WORD") or self.keyword(token) in _KEYWORDS:
            self.fail(token, _IDENTIFIER)
        name = str(token.value)
        if name.lower() in _ATTRIBUTE_ALIASES:
            return "attribute", _ATTRIBUTE_ALIASES[name.lower()]
        names = ", ".join(ATTRIBUTES)
        if token.kind == "IDENT":
            self.fail(token, f"one of {names}", f"unknown attribute '{name}'")
        hint = f"metrics.{name}, params.{name}, tags.{name} or an attribute ({names})"
        self.fail(token, hint, f"unknown identifier '{name}'")

    def parse_operator(self, allowed: tuple[str, ...]) -> tuple[str, _Token]:
        token = self.advance()
        first = self.keyword(token)
        if token.kind == "OP":
            op = _OP_ALIASES.get(token.text, token.text)
        elif first in ("LIKE", "ILIKE", "IN"):
            op = first
        elif first == "NOT":
            if self.keyword() not in ("LIKE", "IN"):
                self.fail(self.peek(), "LIKE or IN after NOT")
            op = "NOT " + self.keyword(self.advance())
        elif first == "IS":
            if self.keyword() == "NOT":
                self.advance()
                if self.keyword() != "NULL":
                    self.fail(self.peek(), "NULL after IS NOT")
                op = "IS NOT NULL"
            elif self.keyword() == "NULL":
                op = "IS NULL"
            else:
                self.fail(self.peek(), "NULL or NOT NULL after IS")
            self.advance()
        else:
            self.fail(token, f"an operator ({', '.join(allowed)})")
        return op, token

    def parse_comparison(self) -> Comparison:
        kind, key = self.parse_identifier()
        if kind == "attribute":
            allowed, value_type = _ATTRIBUTE_RULES[key]
            subject = f"attribute {key}"
        else:
            numeric = kind == "metric"
            allowed = (_NUMERIC if numeric else _STRING) + _NULLS
            value_type = "number" if numeric else "string"
            subject = _PLURAL[kind]
        op, op_token = self.parse_operator(allowed)
        if op not in allowed:
            problem = f"operator {op} does not apply to {subject}"
            self.fail(op_token, f"one of {', '.join(allowed)}", problem)
        if op in _NULLS:
            return Comparison(kind, key, op, None)
        if op not in ("IN", "NOT IN"):
            value = self.parse_value(value_type, subject)
            escapes = str(value)[len(str(value).rstrip("\\")) :]
            if "LIKE" in op and len(escapes) % 2:
                token = self.tokens[self.index - 1]
                problem = f"LIKE pattern {token.text} ends with the escape character \\"
                self.fail(
                    token, "a character after it, or two backslashes for a literal one", problem
                )
            return Comparison(kind, key, op, value)
        if self.peek().kind != "(":
            self.fail(self.peek(), f"'(' after {op}")
        self.advance()
        values = [str(self.parse_value(value_type, subject))]
        while self.peek().kind == ",":
            self.advance()
            values.append(str(self.parse_value(value_type, subject)))
        if self.peek().kind != ")":
            self.fail(self.peek(), "',' or ')'")
        self.advance()
        return Comparison(kind, key, op, tuple(values))

    def parse_value(self, value_type: str, subject: str) -> str | float:
        token = self.advance()
        if token.kind not in ("STRING", "NUMBER"):
            self.fail(token, "a value")
        if value_type in ("number", "integer"):
            if token.kind != "NUMBER":
                self.fail(token, f"a number, since {subject} compare with numbers")
            number = float(token.value)
            if not math.isfinite(number):
                self.fail(token, "a finite number", f"number {token.text} out of range")
            if value_type == "integer" and not number.is_integer():
                self.fail(token, "an integer (milliseconds since the epoch)")
            return number
        if value_type == "experiment_id":
            text = str(token.value).strip() if token.kind == "STRING" else token.text
            # isdigit() alone takes '²', which int() refuses; ids fit the INTEGER column.
            if not (text.isascii() and text.isdigit()) or int(text) >= 2**31:
                self.fail(token, "an experiment id such as '1'")
            return str(int(text))
        if token.kind != "STRING":
            self.fail(
                token,
                f"a quoted string such as '{token.text}', since {subject} compare with strings",
            )
        if value_type == "status":
            if str(token.value).upper() not in _STATUSES:
                statuses = ", ".join(repr(status) for status in _STATUSES)
                self.fail(token, f"one of {statuses}", f"unknown status {token.text}")
            return str(token.value).upper()
        return str(token.value)


def _combine(node: type[And | Or], items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, node) else (item,))
    return node(tuple(flat))


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run filter such as ``metrics.acc > 0.9 and params.model = 'rf'``.

    Returns None for None, or an empty or blank filter. Raises InvalidArgument, naming the
    column of the problem and what was expected there, for anything the grammar (see the
    module docstring) does not accept.
    """
    if text is None or not text.strip():
        return None
    try:
        parser = _Parser(text)
        expr = parser.parse_or()
        if parser.peek().kind != "END":
            parser.fail(parser.peek(), "AND, OR or the end of the filter")
    except _SyntaxError as e:
        raise InvalidArgument(_message("filter", text, e, _FILTER_EXAMPLE)) from e
    return expr


def parse_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse order-by items such as ``["metrics.acc DESC", "start_time"]``; ASC by default;
    None orders by nothing.

    Raises InvalidArgument for an item that is not ``<identifier> [ASC|DESC]``.
    """
    if isinstance(items, str):
        raise InvalidArgument(
            f"order_by must be a list of strings such as ['{_ORDER_EXAMPLE}'], "
            f"not the string {items!r}."
        )
    return [_parse_order_item(item) for item in items or ()]


def _parse_order_item(item: str) -> OrderKey:
    if not isinstance(item, str):
        raise InvalidArgument(
            f"order_by items must be strings such as '{_ORDER_EXAMPLE}', not {item!r}."
        )
    try:
        parser = _Parser(item)
        if not item.strip():
            raise _SyntaxError(0, "empty item", _IDENTIFIER)
        kind, key = parser.parse_identifier()
        direction = parser.keyword()
        expected = "the end" if direction in ("ASC", "DESC") else "ASC, DESC or the end"
        if direction in ("ASC", "DESC"):
            parser.advance()
        if parser.peek().kind != "END":
            parser.fail(parser.peek(), expected)
    except _SyntaxError as e:
        raise InvalidArgument(_message("order_by item", item, e, _ORDER_EXAMPLE)) from e
    return OrderKey(kind, key, ascending=direction != "DESC")


def _message(what: str, text: str, error: _SyntaxError, example: str) -> str:
    return (
        f'Invalid {what} "{text}": {error.problem} at column {error.pos + 1}; '
        f"expected {error.expected}. Example: {example}"
    )
