"""Reference profiles of tabular data: small, mergeable summaries for validation and drift.

A profile holds, per column, counts and moments plus a histogram (numeric columns) or value
frequencies (every other column). Profiles merge: ``merge(profile_frame(a), profile_frame(b))``
matches ``profile_frame(pd.concat([a, b]))`` exactly for rows, counts, missing values, min and
max, to float rounding for mean and std, exactly for value frequencies while a column has at
most ``max_categories`` distinct values, and within the binning for histograms (see
``merge``). So data larger than memory is profiled chunk by chunk (``profile_chunks``), and a
stored profile stands in for the reference data it came from.

Column kinds:

- numeric: integer and float columns; datetimes as seconds since the epoch (UTC; naive values
  are taken as UTC) and timedeltas as seconds. NaN, NaT, None and ±inf count as missing.
- categorical: every other column (bool, string, object, category, …); values are counted by
  their ``str()``, nulls count as missing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument

__all__ = [
    "CategoricalProfile",
    "ColumnProfile",
    "NumericProfile",
    "Profile",
    "merge",
    "profile_chunks",
    "profile_frame",
]

FORMAT = 1  # version of the to_dict layout; bump when it changes
NumericKind: TypeAlias = Literal["number", "datetime", "timedelta"]
_NAN = float("nan")


def _rate(missing: int, count: int) -> float:
    total = count + missing
    return missing / total if total else 0.0


@dataclass(frozen=True)
class NumericProfile:
    """Summary of a numeric column.

    ``count`` values are present and ``missing`` absent. ``mean``, ``min`` and ``max`` are NaN
    when ``count`` is 0; ``std`` is the sample standard deviation (ddof=1, as in pandas), NaN
    below two values. ``m2``, the sum of squared deviations from the mean, makes merges exact.
    ``counts[i]`` counts the values in ``[edges[i], edges[i + 1])``, the last bin closed; the
    edges are the data's values at ``bins + 1`` evenly spaced quantiles, repeats removed, so
    they span ``[min, max]`` (a constant column has the edges ``(v, v)`` and one bin).
    ``kind`` says what the numbers stand for.
    """

    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    m2: float
    kind: NumericKind = "number"

    @property
    def missing_rate(self) -> float:
        """``missing / (count + missing)``: the share of rows without a value; 0.0 if none."""
        return _rate(self.missing, self.count)


@dataclass(frozen=True)
class CategoricalProfile:
    """Summary of a categorical column: how often each value occurs.

    ``frequencies`` keeps the ``max_categories`` most frequent values (ties broken by the
    smaller string), most frequent first; ``other`` counts the rest, so
    ``sum(frequencies.values()) + other == count``.
    """

    count: int
    missing: int
    frequencies: Mapping[str, int]
    other: int
    max_categories: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "frequencies", MappingProxyType(dict(self.frequencies)))

    @property
    def missing_rate(self) -> float:
        """``missing / (count + missing)``: the share of rows without a value; 0.0 if none."""
        return _rate(self.missing, self.count)


ColumnProfile: TypeAlias = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Profile:
    """The profile of a table: its row count and one summary per column, in column order."""

    rows: int
    columns: Mapping[str, ColumnProfile]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN becomes None, ±inf the strings "inf"/"-inf")."""
        return {
            "format": FORMAT,
            "rows": self.rows,
            "columns": {name: _column_to_dict(c) for name, c in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Rebuild a profile from ``to_dict()`` output; raises InvalidArgument if malformed."""
        try:
            if data["format"] > FORMAT:
                raise InvalidArgument(
                    f"Profile format {data['format']} was written by a newer ferryml "
                    f"(this one reads up to {FORMAT}); upgrade ferryml."
                )
            columns = {str(n): _column_from_dict(c) for n, c in data["columns"].items()}
            return cls(rows=int(data["rows"]), columns=columns)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, InvalidArgument):
                raise
            raise InvalidArgument(
                f"Not a ferryml profile ({type(e).__name__}: {e}); pass the dict that "
                "Profile.to_dict() returned."
            ) from e


def _enc(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _dec(value: float | str | None) -> float:
    return _NAN if value is None else float(value)


_FLOATS = ("mean", "std", "min", "max", "m2")
_TYPES: dict[str, type[NumericProfile] | type[CategoricalProfile]] = {
    "numeric": NumericProfile,
    "categorical": CategoricalProfile,
}


def _column_to_dict(c: ColumnProfile) -> dict[str, Any]:
    d = {f.name: getattr(c, f.name) for f in fields(c)}
    if isinstance(c, NumericProfile):
        d.update({k: _enc(d[k]) for k in _FLOATS}, edges=[_enc(e) for e in c.edges])
        return {"type": "numeric", **d, "counts": list(c.counts)}
    return {"type": "categorical", **d, "frequencies": dict(c.frequencies)}


def _column_from_dict(d: Mapping[str, Any]) -> ColumnProfile:
    cls = _TYPES[d["type"]]
    args = {f.name: d[f.name] for f in fields(cls)}
    args.update(count=int(args["count"]), missing=int(args["missing"]))
    if cls is CategoricalProfile:
        args["frequencies"] = {str(k): int(v) for k, v in args["frequencies"].items()}
        args.update(other=int(args["other"]), max_categories=int(args["max_categories"]))
        return CategoricalProfile(**args)
    if args["kind"] not in ("number", "datetime", "timedelta"):
        raise ValueError(f"unknown numeric kind {args['kind']!r}")
    args.update({k: _dec(args[k]) for k in _FLOATS})
    args["edges"], args["counts"] = tuple(map(_dec, d["edges"])), tuple(map(int, d["counts"]))
    if len(args["counts"]) != max(len(args["edges"]) - 1, 0):
        raise ValueError(f"{len(args['edges'])} edges do not bound {len(args['counts'])} bins")
    return NumericProfile(**args)


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidArgument(f"{name} must be a whole number >= {least}, got {value!r}.")


def _column_names(df: Any) -> list[str]:
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgument(
            f"Expected a pandas DataFrame, got {type(df).__name__}; "
            "wrap the data with pd.DataFrame(...)."
        )
    names = [str(c) for c in df.columns]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name:
            raise InvalidArgument(
                f"Column #{i} has an empty name; give it one, e.g. "
                f"df.columns = [c or 'column_{i}' for c in df.columns]."
            )
        if name in seen:
            raise InvalidArgument(
                f"Column name {name!r} appears more than once (names are compared as strings); "
                "rename the duplicates."
            )
        seen.add(name)
    return names


def profile_frame(df: pd.DataFrame, *, bins: int = 20, max_categories: int = 50) -> Profile:
    """Profile every column of ``df``.

    Args:
        df: the data; column names are converted with ``str()``.
        bins: histogram bins per numeric column, before equal quantiles are merged.
        max_categories: distinct values kept per categorical column; the rest go to ``other``.

    Returns:
        A ``Profile``. Raises InvalidArgument if ``df`` is not a DataFrame, has an empty or
        duplicated column name, or the limits are not positive whole numbers.

    Example:
        >>> profile_frame(pd.DataFrame({"age": [31, 47, None]})).columns["age"].missing
        1
    """
    names = _column_names(df)
    _check_count("bins", bins, 1)
    _check_count("max_categories", max_categories, 0)
    columns = {
        name: _profile_series(df.iloc[:, i], bins, max_categories) for i, name in enumerate(names)
    }
    return Profile(rows=len(df), columns=columns)


def _profile_series(s: pd.Series, bins: int, max_categories: int) -> ColumnProfile:
    numeric = _numeric_values(s)
    if numeric is None:
        return _categorical(s, max_categories)
    values, kind = numeric
    return _numeric(values, len(s) - values.size, bins, kind)


def _numeric_values(s: pd.Series) -> tuple[np.ndarray, NumericKind] | None:
    """The present values as float64, and what they stand for; None for categorical columns."""
    dtype = s.dtype
    api = pd.api.types
    if api.is_datetime64_any_dtype(dtype):
        stamps = pd.to_datetime(s, utc=True).dt.tz_localize(None).to_numpy()
        stamps = stamps[~np.isnat(stamps)]
        return (stamps - np.datetime64(0, "s")) / np.timedelta64(1, "s"), "datetime"
    if api.is_timedelta64_dtype(dtype):
        spans = s.to_numpy()
        return spans[~np.isnat(spans)] / np.timedelta64(1, "s"), "timedelta"
    if api.is_bool_dtype(dtype) or api.is_complex_dtype(dtype) or not api.is_numeric_dtype(dtype):
        return None
    values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    return (values if finite.all() else values[finite]), "number"


def _numeric(values: np.ndarray, missing: int, bins: int, kind: NumericKind) -> NumericProfile:
    n = int(values.size)
    if n == 0:
        return NumericProfile(0, missing, _NAN, _NAN, _NAN, _NAN, (), (), 0.0, kind)
    x = np.sort(values)  # one sort gives min, max, the quantiles and the bin counts
    with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: inf, not a warning
        mean = float(x.mean())
        deviations = x - mean
        m2 = float(deviations @ deviations)
    # edges are data values at the quantiles ("lower" method): a discrete column gets its own
    # values as edges, never empty bins between them
    edges = np.unique(x[np.floor(np.linspace(0.0, n - 1.0, bins + 1)).astype(np.intp)])
    if edges.size == 1:
        edges = np.repeat(edges, 2)
    # values below the next edge, less those below this one: bins [e_i, e_i+1), the last closed
    below = np.searchsorted(x, edges[1:-1], side="left")
    counts = np.diff(np.concatenate(([0], below, [n])))
    return NumericProfile(
        count=n,
        missing=missing,
        mean=mean,
        std=_std(m2, n),
        min=float(x[0]),
        max=float(x[-1]),
        edges=tuple(edges.tolist()),
        counts=tuple(counts.tolist()),
        m2=m2,
        kind=kind,
    )


def _std(m2: float, n: int) -> float:
    return math.sqrt(m2 / (n - 1)) if n > 1 else _NAN


def _categorical(s: pd.Series, max_categories: int) -> CategoricalProfile:
    missing = int(s.isna().sum())
    counts = s.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]  # a category dtype lists its unused categories too
    # group by the string form: merges values that print alike (1 and "1"), sorts the keys
    counts = counts.groupby(counts.index.astype(str), sort=True).sum()
    keys, n = counts.index.to_numpy(dtype=object), counts.to_numpy(dtype=np.int64)
    keep = np.argsort(-n, kind="stable")[:max_categories]  # stable: ties keep key order
    frequencies = {str(keys[i]): int(n[i]) for i in keep}
    count = len(s) - missing
    return CategoricalProfile(
        count, missing, frequencies, count - sum(frequencies.values()), max_categories
    )


def _capped(frequencies: Mapping[str, int], limit: int) -> dict[str, int]:
    top = heapq.nsmallest(limit, frequencies.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(top)


def merge(a: Profile, b: Profile) -> Profile:
    """The profile of ``a``'s rows and ``b``'s rows together.

    Rows, counts, missing values, min and max add up exactly; mean and std follow Chan et
    al.'s parallel formulas (exact up to float rounding). Value frequencies are added and
    capped again at the larger ``max_categories``: exact while a column has at most that many
    distinct values; beyond it, a value kept on one side but in ``other`` on the other side
    keeps only the kept count (totals stay exact).

    Histograms keep ``a``'s edges. If ``b``'s edges differ, ``b``'s counts are spread over
    ``a``'s bins assuming values are uniform inside each of ``b``'s bins (a zero-width bin
    goes whole to the bin holding its value), rounded so the total is kept; ``a``'s outermost
    edges first move out to the union's min and max, so the edges still span the data.

    A column missing from one profile counts as missing for that profile's rows; a column
    with no values takes the other side's type. Raises InvalidArgument if a column is
    numeric on one side and categorical on the other (or of another numeric kind).
    """
    if not isinstance(a, Profile) or not isinstance(b, Profile):
        raise InvalidArgument(
            f"merge takes two Profiles, got {type(a).__name__} and {type(b).__name__}; "
            "make them with profile_frame()."
        )
    columns: dict[str, ColumnProfile] = {}
    for name in [*a.columns, *(n for n in b.columns if n not in a.columns)]:
        left, right = a.columns.get(name), b.columns.get(name)
        if left is None:
            left = _empty_like(right, a.rows)
        if right is None:
            right = _empty_like(left, b.rows)
        columns[name] = _merge_column(name, left, right)
    return Profile(rows=a.rows + b.rows, columns=columns)


def _empty_like(c: ColumnProfile | None, missing: int) -> ColumnProfile:
    if isinstance(c, NumericProfile):
        return NumericProfile(0, missing, _NAN, _NAN, _NAN, _NAN, (), (), 0.0, c.kind)
    cap = c.max_categories if c is not None else 50
    return CategoricalProfile(0, missing, {}, 0, cap)


def _describe(c: ColumnProfile) -> str:
    return f"numeric ({c.kind})" if isinstance(c, NumericProfile) else "categorical"


def _merge_column(name: str, a: ColumnProfile, b: ColumnProfile) -> ColumnProfile:
    if _describe(a) != _describe(b):
        if a.count == 0:
            a = _empty_like(b, a.missing)
        elif b.count == 0:
            b = _empty_like(a, b.missing)
        else:
            raise InvalidArgument(
                f"Cannot merge column {name!r}: it is {_describe(a)} in one profile and "
                f"{_describe(b)} in the other. Give the column one type in every batch, "
                f"e.g. df[{name!r}] = df[{name!r}].astype(str)."
            )
    if isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile):
        cap = max(a.max_categories, b.max_categories)
        summed = dict(a.frequencies)
        for key, n in b.frequencies.items():
            summed[key] = summed.get(key, 0) + n
        kept = _capped(summed, cap)
        count = a.count + b.count
        return CategoricalProfile(
            count, a.missing + b.missing, kept, count - sum(kept.values()), cap
        )
    assert isinstance(a, NumericProfile) and isinstance(b, NumericProfile)
    if b.count == 0:
        return replace(a, missing=a.missing + b.missing)
    if a.count == 0:
        return replace(b, missing=a.missing + b.missing)
    n = a.count + b.count
    delta = b.mean - a.mean
    m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / n
    edges = np.array(a.edges)
    edges[0], edges[-1] = min(a.min, b.min), max(a.max, b.max)
    if a.edges == b.edges:
        counts = np.add(a.counts, b.counts)
    else:
        counts = np.add(a.counts, _rebin(np.array(b.edges), np.array(b.counts), edges))
    return NumericProfile(
        count=n,
        missing=a.missing + b.missing,
        mean=a.mean + delta * b.count / n,
        std=_std(m2, n),
        min=min(a.min, b.min),
        max=max(a.max, b.max),
        edges=tuple(edges.tolist()),
        counts=tuple(int(c) for c in counts),
        m2=m2,
        kind=a.kind,
    )


def _rebin(src: np.ndarray, counts: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Spread ``counts`` over bins ``src`` into bins ``dst`` (which cover them), in integers."""
    low, high = src[:-1], src[1:]
    width = high - low
    overlap = np.minimum(high[:, None], dst[None, 1:]) - np.maximum(low[:, None], dst[None, :-1])
    share = np.clip(overlap, 0.0, None) / np.where(width > 0, width, 1.0)[:, None]
    points = np.flatnonzero(width <= 0)
    if points.size:
        share[points] = 0.0
        where = np.searchsorted(dst, low[points], side="right") - 1
        share[points, np.clip(where, 0, dst.size - 2)] = 1.0
    exact = np.clip(share * counts[:, None], 0.0, None).sum(axis=0)
    whole = np.floor(exact).astype(np.int64)
    short = int(counts.sum()) - int(whole.sum())  # largest remainders get the leftover units
    if short > 0:
        whole[np.argsort(-(exact - whole), kind="stable")[:short]] += 1
    return whole


def profile_chunks(
    chunks: Iterable[pd.DataFrame], *, bins: int = 20, max_categories: int = 50
) -> Profile:
    """Profile data arriving in chunks (e.g. ``pd.read_csv(..., chunksize=100_000)``).

    Equals profiling the concatenation, within ``merge``'s terms. The histogram edges come
    from the first chunk, so make it representative (not sorted by a numeric column).
    Raises InvalidArgument if there are no chunks or a chunk is not a DataFrame.
    """
    result: Profile | None = None
    for chunk in chunks:
        part = profile_frame(chunk, bins=bins, max_categories=max_categories)
        result = part if result is None else merge(result, part)
    if result is None:
        raise InvalidArgument("profile_chunks got no chunks; pass at least one DataFrame.")
    return result
