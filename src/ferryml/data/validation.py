"""Declarative expectations checked against data. An expectation is a
small frozen object with ``check(df) -> ExpectationResult``; ``validate`` runs a list of them
into a ``ValidationReport``. ``expectations_from_config`` reads the form used in ``ferry.yaml``::

    expectations:
      - not_null: age
      - range: {column: age, min: 0, max: 120}
      - freshness: {column: ts, max_age: 7d}
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeAlias

import numpy as np
import pandas as pd

from ferryml.data.schema import require_frame
from ferryml.errors import InvalidArgument, ValidationFailed

__all__ = [
    "AllowedValues",
    "Custom",
    "Expectation",
    "ExpectationResult",
    "Fresh",
    "InRange",
    "Matches",
    "NotNull",
    "RowCount",
    "Unique",
    "ValidationReport",
    "expectation_from_checked",
    "expectations_from_config",
    "validate",
]

EXAMPLES = 3  # offending values quoted in a failure message


# -- expectations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation: what was seen and, on failure, what was wrong."""

    expectation: str
    column: str | None
    passed: bool
    observed: str
    message: str


class Expectation(Protocol):
    """Anything with ``check(df) -> ExpectationResult`` can be validated."""

    def check(self, df: pd.DataFrame) -> ExpectationResult: ...


def _show(value: Any) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # -4, not -4.0, for an integer column that holds nulls
    return repr(value) if isinstance(value, str) else str(value)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _examples(values: Iterable[Any], limit: int = EXAMPLES) -> str:
    shown: list[str] = []
    for value in values:
        if (text := _show(value)) not in shown:
            shown.append(text)
        if len(shown) == limit:
            break
    return ", ".join(shown)


Outcome: TypeAlias = tuple[bool, str, str]  # passed, observed, message


@dataclass(frozen=True)
class _ColumnExpectation:
    """Shared by the checks of one column: a missing column is a failed result."""

    column: str
    key: ClassVar[str]

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise InvalidArgument(f"column must be a non-empty string, got {self.column!r}.")

    def check(self, df: pd.DataFrame) -> ExpectationResult:
        if self.column not in require_frame(df).columns:
            have = ", ".join(repr(str(c)) for c in df.columns[:10]) or "none"
            more = f" and {len(df.columns) - 10} more" if len(df.columns) > 10 else ""
            message = f"column {self.column!r} is missing; the data has columns {have}{more}"
            return ExpectationResult(self.key, self.column, False, "column missing", message)
        outcome = self._test(df[self.column], f"column {self.column!r}")
        return ExpectationResult(self.key, self.column, *outcome)

    def _test(self, s: pd.Series, where: str) -> Outcome:
        raise NotImplementedError


@dataclass(frozen=True)
class NotNull(_ColumnExpectation):
    """Every value of ``column`` is present."""

    key: ClassVar[str] = "not_null"

    def _test(self, s: pd.Series, where: str) -> Outcome:
        nulls = s.isna().to_numpy(dtype=bool)
        n = int(nulls.sum())
        if not n:
            return True, f"0 of {len(s)} null", f"{where}: no nulls"
        rows = _examples(s.index[nulls])
        return (
            False,
            f"{n} of {len(s)} null",
            f"{where}: {_n(n, 'null value')}, e.g. at rows {rows}",
        )


def _is_bound(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.number | date):  # datetime and Timestamp are dates
        return True
    try:
        return isinstance(value, str) and pd.Timestamp(value) is not pd.NaT
    except ValueError:
        return False


def _interval(low: Any, high: Any) -> str:
    left = "(-inf" if low is None else f"[{_show(low)}"
    return f"{left}, " + ("inf)" if high is None else f"{_show(high)}]")


@dataclass(frozen=True)
class InRange(_ColumnExpectation):
    """Every non-null value of ``column`` lies in ``[min, max]`` (numbers or timestamps)."""

    min: Any = None
    max: Any = None
    key: ClassVar[str] = "range"

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.min, self.max
        if low is None and high is None:
            raise InvalidArgument(f"range on {self.column!r} needs min, max or both.")
        for bound in (low, high):
            if bound is not None and not _is_bound(bound):
                raise InvalidArgument(
                    f"range bound {bound!r:.80} on {self.column!r} is not a number or a date "
                    "such as 2024-01-01."
                )
        try:
            inverted = low is not None and high is not None and low > high
        except TypeError as e:
            raise InvalidArgument(f"range min {low!r} and max {high!r} differ in type.") from e
        if inverted:
            raise InvalidArgument(f"range min {low!r} is above max {high!r}.")

    def _test(self, s: pd.Series, where: str) -> Outcome:
        api = pd.api.types
        stamps = api.is_datetime64_any_dtype(s.dtype)
        if api.is_bool_dtype(s.dtype) or not (api.is_numeric_dtype(s.dtype) or stamps):
            return False, f"dtype {s.dtype}", f"{where} holds {s.dtype} values, not numbers"
        values = s.dropna()
        bad = np.zeros(len(values), dtype=bool)
        for bound, beyond in ((self.min, values.lt), (self.max, values.gt)):
            if bound is not None:
                bad |= beyond(_stamp(bound, s.dtype) if stamps else bound).to_numpy(dtype=bool)
        observed = f"min {_show(values.min())}, max {_show(values.max())}" if len(values) else ""
        n, interval = int(bad.sum()), _interval(self.min, self.max)
        if not n:
            return True, observed or "no values", f"{where}: all values in {interval}"
        return (
            False,
            observed,
            f"{where}: {_n(n, 'value')} outside {interval}, e.g. {_examples(values[bad])}",
        )


def _stamp(value: Any, dtype: Any) -> pd.Timestamp:
    """A bound comparable with a datetime column: naive bounds and columns are UTC."""
    stamp = pd.Timestamp(value)
    if getattr(dtype, "tz", None) is None:
        return stamp.tz_convert(None) if stamp.tz else stamp
    return stamp if stamp.tz else stamp.tz_localize("UTC")


@dataclass(frozen=True)
class AllowedValues(_ColumnExpectation):
    """Every non-null value of ``column`` is one of ``values``."""

    values: tuple[Any, ...]
    key: ClassVar[str] = "allowed_values"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Iterable):
            raise InvalidArgument(f"allowed values must be a list, got {self.values!r}.")
        object.__setattr__(self, "values", tuple(self.values))

    def _test(self, s: pd.Series, where: str) -> Outcome:
        values = s.dropna()
        bad = ~values.isin(list(self.values)).to_numpy(dtype=bool)
        n = int(bad.sum())
        allowed = _examples(self.values, 10) + (", …" if len(self.values) > 10 else "")
        if not n:
            return True, f"0 of {len(values)} not allowed", f"{where}: all values in [{allowed}]"
        message = f"{where}: {_n(n, 'value')} not in [{allowed}], e.g. {_examples(values[bad])}"
        return False, f"{n} of {len(values)} not allowed", message


@dataclass(frozen=True)
class Unique(_ColumnExpectation):
    """No non-null value of ``column`` occurs twice."""

    key: ClassVar[str] = "unique"

    def _test(self, s: pd.Series, where: str) -> Outcome:
        values = s.dropna()
        repeated = values[values.duplicated(keep=False).to_numpy(dtype=bool)].value_counts()
        observed = f"{len(repeated)} duplicated values in {int(repeated.sum())} rows"
        if repeated.empty:
            return True, observed, f"{where}: all values unique"
        shown = ", ".join(f"{_show(v)} ({n} times)" for v, n in repeated.iloc[:EXAMPLES].items())
        return False, observed, f"{where}: {_n(len(repeated), 'value')} repeated, e.g. {shown}"


@dataclass(frozen=True)
class Matches(_ColumnExpectation):
    """Every non-null value of ``column``, as a string, fully matches the regex ``pattern``."""

    pattern: str
    key: ClassVar[str] = "regex"

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            re.compile(self.pattern)
        except (re.error, TypeError) as e:
            raise InvalidArgument(f"pattern {self.pattern!r} is not a valid regex: {e}.") from e

    def _test(self, s: pd.Series, where: str) -> Outcome:
        regex = re.compile(self.pattern)
        texts = [str(v) for v in s.dropna()]  # Python's re, whichever engine backs the column
        bad = [t for t in texts if regex.fullmatch(t) is None]
        observed = f"{len(bad)} of {len(texts)} do not match"
        if not bad:
            return True, observed, f"{where}: all values match {self.pattern!r}"
        message = (
            f"{where}: {_n(len(bad), 'value')} not matching {self.pattern!r}, e.g. {_examples(bad)}"
        )
        return False, observed, message


def _parse_age(value: Any) -> timedelta:
    from ferryml._duration import parse_duration

    if isinstance(value, timedelta):
        age = value
    else:
        try:
            age = timedelta(seconds=parse_duration(value))
        except InvalidArgument as e:
            raise InvalidArgument(f"max_age {e} Give a timedelta or text such as '7d'.") from e
    if age <= timedelta():
        raise InvalidArgument(f"max_age must be positive, got {value!r}.")
    return age


def _duration(span: timedelta) -> str:
    if span < timedelta():
        return f"-{_duration(-span)}"  # a timestamp in the future
    s = int(span.total_seconds())
    parts = ((s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s"))
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


@dataclass(frozen=True)
class Fresh(_ColumnExpectation):
    """The newest timestamp in ``column`` is at most ``max_age`` old (naive times are UTC).

    ``max_age`` is a timedelta or a string like "30m", "36h", "7d" (kept as a timedelta);
    strings in the column are read as ISO 8601. ``now`` (default: the time of the check) is
    there for tests and replays.
    """

    max_age: timedelta | str
    now: datetime | None = field(default=None, compare=False)
    key: ClassVar[str] = "freshness"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "max_age", _parse_age(self.max_age))
        if self.now is not None and not isinstance(self.now, datetime):
            raise InvalidArgument(f"now must be a datetime, got {self.now!r}.")

    def _test(self, s: pd.Series, where: str) -> Outcome:
        stamps, api = None, pd.api.types
        if api.is_datetime64_any_dtype(s.dtype):
            stamps = pd.to_datetime(s, utc=True)
        elif api.is_string_dtype(s.dtype):  # str or object: read as ISO 8601 text
            try:
                stamps = pd.to_datetime(s.dropna().astype(str), utc=True, format="ISO8601")
            except (ValueError, TypeError, OverflowError):
                stamps = None
        if stamps is None or not pd.api.types.is_datetime64_any_dtype(stamps.dtype):
            return (
                False,
                f"dtype {s.dtype}",
                f"{where}: not timestamps, e.g. {_examples(s.dropna())}",
            )
        if stamps.isna().all():
            return False, "no timestamps", f"{where} holds no timestamps"
        now = pd.Timestamp(self.now or datetime.now(UTC))
        newest = stamps.max()
        age = (now.tz_localize(UTC) if now.tz is None else now) - newest
        assert isinstance(self.max_age, timedelta)  # __post_init__ parsed it
        old, limit = _duration(age.to_pytimedelta()), _duration(self.max_age)
        observed = f"newest {newest.isoformat()}, {old} old"
        if age <= self.max_age:
            return True, observed, f"{where}: newest value is {old} old, within {limit}"
        return (
            False,
            observed,
            f"{where}: newest value {newest.isoformat()} is {old} old, over {limit}",
        )


@dataclass(frozen=True)
class RowCount:
    """The table has at least ``min`` and at most ``max`` rows."""

    min: int | None = None
    max: int | None = None
    key: ClassVar[str] = "row_count"

    def __post_init__(self) -> None:
        for bound in (self.min, self.max):
            if bound is not None and (type(bound) is not int or bound < 0):
                raise InvalidArgument(f"row_count bounds are whole numbers >= 0, got {bound!r}.")
        if self.min is None and self.max is None:
            raise InvalidArgument("row_count needs min, max or both.")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidArgument(f"row_count min {self.min} is above max {self.max}.")

    def check(self, df: pd.DataFrame) -> ExpectationResult:
        n, low, high = len(require_frame(df)), self.min, self.max
        passed = (low is None or n >= low) and (high is None or n <= high)
        wanted = " and ".join(
            f"{word} {bound}"
            for word, bound in (("at least", low), ("at most", high))
            if bound is not None
        )
        message = f"expected {wanted} rows, got {n}"
        return ExpectationResult(self.key, None, passed, f"{n} rows", message)


@dataclass(frozen=True)
class Custom:
    """``fn(df)`` returns a bool or ``(bool, message)``; an exception counts as a failure."""

    name: str
    fn: Callable[[pd.DataFrame], bool | tuple[bool, str]]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument(f"custom check name must be non-empty text, got {self.name!r}.")
        if not callable(self.fn):
            raise InvalidArgument(f"custom check {self.name!r}: {self.fn!r} is not callable.")

    def check(self, df: pd.DataFrame) -> ExpectationResult:
        require_frame(df)
        try:
            out = self.fn(df)
        except Exception as e:  # noqa: BLE001 - a broken check is reported; the others still run
            message = f"custom check {self.name!r} raised {type(e).__name__}: {e}"
            return ExpectationResult(self.name, None, False, "raised", message)
        ok, text = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
        if not isinstance(ok, bool | np.bool_) or not isinstance(text, str | None):
            message = f"custom check {self.name!r} returned {out!r}; return bool or (bool, message)"
            return ExpectationResult(self.name, None, False, "bad return value", message)
        observed = "passed" if ok else "failed"
        message = text or f"custom check {self.name!r} {observed}"
        return ExpectationResult(self.name, None, bool(ok), observed, message)


def _custom(function: Any, name: str | None = None) -> Custom:
    module, _, attr = function.partition(":") if isinstance(function, str) else ("", "", "")
    if not module or not attr:
        raise InvalidArgument(f"{function!r} is not an import path 'package.module:function'.")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise InvalidArgument(f"cannot import {function!r} ({type(e).__name__}: {e}).") from e
    return Custom(name or function, fn)


# name: (constructor, an example of its ferry.yaml form); the form's schema is
# ``ferryml._configtypes.ExpectationConfig``
_CONFIG: dict[str, tuple[Callable[..., Expectation], str]] = {
    "not_null": (NotNull, "not_null: age"),
    "range": (InRange, "range: {column: age, min: 0, max: 120}"),
    "allowed_values": (AllowedValues, "allowed_values: {column: plan, values: [free, pro]}"),
    "unique": (Unique, "unique: id"),
    "regex": (Matches, "regex: {column: email, pattern: '.+@.+'}"),
    "row_count": (RowCount, "row_count: {min: 100, max: 1000000}"),
    "freshness": (Fresh, "freshness: {column: ts, max_age: 7d}"),
    "custom": (_custom, "custom: my_pkg.checks:positive"),
}


def expectations_from_config(items: Any) -> list[Expectation]:
    """Expectations from their ``ferry.yaml`` form: a list of one-key mappings, e.g.
    ``[{"not_null": "age"}, {"range": {"column": "age", "min": 0, "max": 120}}]``.

    Keys: not_null, range, allowed_values, unique, regex, row_count, freshness, custom (an
    import path ``package.module:function``). Raises InvalidArgument naming the bad item,
    the field, what is wrong with it and a valid example.
    """
    if not isinstance(items, list):
        raise InvalidArgument(
            f"Expectations must be a list, got {type(items).__name__}; e.g. "
            "[{'not_null': 'age'}, {'range': {'column': 'age', 'min': 0, 'max': 120}}]."
        )
    return [_from_item(i, item) for i, item in enumerate(items, 1)]


def _from_item(i: int, item: Any) -> Expectation:
    from ferryml._configfile import check
    from ferryml._configtypes import ExpectationConfig

    kind = next(iter(item), None) if isinstance(item, Mapping) and len(item) == 1 else None
    example = _CONFIG[kind][1] if kind in _CONFIG else _CONFIG["range"][1]
    where = f"Expectation #{i} {item!r:.200} is invalid"
    then = f"Example (ferry.yaml): - {example}"

    def wrong(field: str, detail: str) -> InvalidArgument:
        return InvalidArgument(f"{where}: {field + ': ' if field else ''}{detail} {then}")

    checked = check(ExpectationConfig, item, wrong)
    try:
        return expectation_from_checked(checked)
    except InvalidArgument as e:  # a custom check that cannot be imported
        raise InvalidArgument(f"{where}: {str(e).rstrip('.')}. {then}") from e


def expectation_from_checked(item: Any) -> Expectation:
    """An expectation from its checked ``ferry.yaml`` form (an ``ExpectationConfig``).

    Raises:
        InvalidArgument: a custom check cannot be imported.
    """
    body = item.body.model_dump(exclude_none=True)
    if item.kind == "freshness":
        body["max_age"] = timedelta(seconds=body["max_age"])
    make = _CONFIG[item.kind][0]
    return make(**body)


# -- report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationReport:
    """The results of ``validate``, in the order the expectations were given."""

    results: tuple[ExpectationResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [asdict(r) for r in self.results]}

    def raise_for_failures(self) -> None:
        """Raise ValidationFailed (carrying this report) if any expectation failed."""
        failures = self.failures
        if not failures:
            return
        listed = "; ".join(r.message for r in failures[:5])
        more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
        raise ValidationFailed(
            f"{len(failures)} of {len(self.results)} expectations failed: {listed}{more}. "
            "Fix the data or the expectations; ValidationReport.to_html() shows every result.",
            report=self,
        )

    def to_html(self, title: str = "Validation report") -> str:
        """A standalone HTML page: a summary line and a table of results, coloured by outcome."""
        import jinja2  # only reports need it; keeps `import ferryml.data` light

        template = jinja2.Environment(autoescape=True).from_string(_HTML)
        ok = sum(r.passed for r in self.results)
        return template.render(title=title, report=self, ok=ok, total=len(self.results))


def validate(df: pd.DataFrame, expectations: Iterable[Expectation]) -> ValidationReport:
    """Check ``df`` against each expectation; a missing column fails its expectation.

    Raises InvalidArgument if ``df`` is not a DataFrame or an item has no ``check`` method.
    """
    require_frame(df)
    results = []
    for item in expectations:
        if not callable(getattr(item, "check", None)):
            raise InvalidArgument(
                f"{item!r} is not an expectation (it has no check(df) method); build one such as "
                "NotNull('age'), or parse ferry.yaml items with expectations_from_config."
            )
        results.append(item.check(df))
    return ValidationReport(tuple(results))


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1f2328}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.pass{color:#1a7f37}.fail{color:#cf222e}
tr.pass td.status{background:#dafbe1}tr.fail td.status{background:#ffebe9}
td.status{font-weight:600}
</style></head><body>
<h1>{{ title }}</h1>
<p class="{{ 'pass' if report.passed else 'fail' }}">{{ ok }} of {{ total }} expectations passed</p>
<table><thead><tr><th>Expectation</th><th>Column</th><th>Status</th><th>Observed</th>
<th>Message</th></tr></thead><tbody>
{%- for r in report.results %}
<tr class="{{ 'pass' if r.passed else 'fail' }}"><td>{{ r.expectation }}</td>
<td>{{ r.column or '' }}</td><td class="status">{{ 'PASS' if r.passed else 'FAIL' }}</td>
<td>{{ r.observed }}</td><td>{{ r.message }}</td></tr>
{%- endfor %}
</tbody></table></body></html>
"""
