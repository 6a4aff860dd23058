"""Schemas inferred from data: each column's kind, nullability, range and (for few
distinct values) its categories; ``Schema.diff`` says what changed between two versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument

__all__ = ["ColumnChange", "ColumnSchema", "Schema", "SchemaDiff", "infer_schema"]

Kind: TypeAlias = Literal["integer", "float", "boolean", "string", "category", "datetime"]
KINDS: tuple[str, ...] = get_args(Kind)
MAX_CATEGORIES = 20  # string and category columns with at most this many values list them
Bound: TypeAlias = float | str | None


def require_frame(df: Any) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgument(
            f"Expected a pandas DataFrame, got {type(df).__name__}; wrap the data with "
            "pd.DataFrame(...)."
        )
    return df


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its kind, whether it held nulls, its range and (when few) its values.

    ``min``/``max`` are numbers for integer and float columns (finite values only), ISO 8601
    strings for datetime columns and None otherwise.
    """

    name: str
    kind: Kind
    nullable: bool
    min: Bound = None
    max: Bound = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.categories is not None:  # a JSON list read back
            object.__setattr__(self, "categories", tuple(map(str, self.categories)))


@dataclass(frozen=True)
class ColumnChange:
    """A column whose kind or nullability changed: ``ColumnChange("age", "integer", "float")``."""

    column: str
    before: str
    after: str


@dataclass(frozen=True)
class SchemaDiff:
    """What changed from one schema to another (names in the order of the schemas)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    kind_changes: tuple[ColumnChange, ...]
    nullability_changes: tuple[ColumnChange, ...]  # before/after: "nullable" or "not null"

    @property
    def changed(self) -> bool:
        return any((self.added, self.removed, self.kind_changes, self.nullability_changes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Schema:
    """The columns of a table, in order."""

    columns: tuple[ColumnSchema, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``Schema.from_dict`` reads it back."""
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Rebuild a schema from ``to_dict()`` output; raises InvalidArgument if malformed."""
        try:
            columns = tuple(ColumnSchema(**c) for c in data["columns"])
            for c in columns:
                if c.kind not in KINDS:
                    raise ValueError(f"kind {c.kind!r} is not one of {', '.join(KINDS)}")
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidArgument(
                f"Not a ferryml schema ({type(e).__name__}: {e}); pass the dict that "
                "Schema.to_dict() returned."
            ) from e
        return cls(columns)

    def diff(self, other: Schema) -> SchemaDiff:
        """What changed from this schema (before) to ``other`` (after)."""
        before = {c.name: c for c in self.columns}
        after = {c.name: c for c in other.columns}
        both = [name for name in before if name in after]
        null = {True: "nullable", False: "not null"}
        return SchemaDiff(
            added=tuple(n for n in after if n not in before),
            removed=tuple(n for n in before if n not in after),
            kind_changes=tuple(
                ColumnChange(n, before[n].kind, after[n].kind)
                for n in both
                if before[n].kind != after[n].kind
            ),
            nullability_changes=tuple(
                ColumnChange(n, null[before[n].nullable], null[after[n].nullable])
                for n in both
                if before[n].nullable != after[n].nullable
            ),
        )


# what pd.api.types.infer_dtype finds in an object column -> kind; anything else is a string
_OBJECT_KINDS: dict[str, Kind] = dict.fromkeys(("datetime", "datetime64", "date"), "datetime")
_OBJECT_KINDS |= {"boolean": "boolean", "integer": "integer", "floating": "float"}
_OBJECT_KINDS |= dict.fromkeys(("decimal", "mixed-integer-float"), "float")


def _kind(s: pd.Series) -> Kind:
    api, dtype = pd.api.types, s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if api.is_bool_dtype(dtype):
        return "boolean"
    if api.is_datetime64_any_dtype(dtype):
        return "datetime"
    if api.is_integer_dtype(dtype):
        return "integer"
    if api.is_float_dtype(dtype):
        return "float"
    if api.is_object_dtype(dtype):
        return _OBJECT_KINDS.get(api.infer_dtype(s, skipna=True), "string")
    return "string"  # strings, and dtypes without a kind of their own (timedelta, period, …)


def _range(values: pd.Series, kind: Kind) -> tuple[Bound, Bound]:
    if values.empty:
        return None, None
    if kind == "integer":
        return int(values.min()), int(values.max())
    if kind == "float":
        numbers = pd.to_numeric(values).to_numpy(dtype=np.float64)
        numbers = numbers[np.isfinite(numbers)]
        return (float(numbers.min()), float(numbers.max())) if numbers.size else (None, None)
    if kind == "datetime":
        try:
            low, high = min(values), max(values)
        except TypeError:  # naive and aware timestamps mixed in an object column
            return None, None
        return low.isoformat(), high.isoformat()
    return None, None


def infer_schema(df: pd.DataFrame) -> Schema:
    """The schema ``df`` shows: per column its kind, nullability, range and few categories.

    Object columns take the kind of what they hold (``pd.api.types.infer_dtype``); anything
    without a kind of its own is a "string". Raises InvalidArgument if ``df`` is not a
    DataFrame.
    """
    columns = []
    for name, s in require_frame(df).items():
        kind, present = _kind(s), s.dropna()
        low, high = _range(present, kind)
        categories = None
        if kind in ("string", "category"):
            distinct = present.astype(str).unique()
            if len(distinct) <= MAX_CATEGORIES:
                categories = tuple(sorted(distinct))
        columns.append(ColumnSchema(str(name), kind, len(present) < len(s), low, high, categories))
    return Schema(tuple(columns))
