"""Drift of one column: the test chosen for it, run on raw samples or binned profiles,
and its ``ColumnDrift`` result. ``ferryml.monitoring.drift`` runs it over a dataset."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
from scipy import stats

from ferryml.data.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    _numeric_values,
)
from ferryml.errors import InvalidArgument
from ferryml.monitoring._stats import (
    OTHER,
    _bin_categories,
    _bin_profile,
    _bin_values,
    _binned_ks,
    _binned_wasserstein,
    _CatBins,
    _chisquare,
    _jensenshannon,
    _norm,
    _NumBins,
    _profile_keys,
    _psi,
    _shares,
    _wasserstein,
)

__all__ = [
    "CATEGORICAL_TESTS",
    "DEFAULT_THRESHOLDS",
    "NUMERIC_TESTS",
    "SMALL_SAMPLE",
    "TESTS",
    "ColumnDrift",
    "Options",
    "Raw",
    "column_drift",
    "raw_column",
]

Kind: TypeAlias = Literal["numeric", "categorical"]
NUMERIC_TESTS = ("ks", "wasserstein", "psi", "jensenshannon")
CATEGORICAL_TESTS = ("chisquare", "psi", "jensenshannon")
TESTS = ("ks", "wasserstein", "chisquare", "psi", "jensenshannon")
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"ks": 0.05, "chisquare": 0.05, "wasserstein": 0.1, "psi": 0.1, "jensenshannon": 0.1}
)
P_VALUE_TESTS = frozenset({"ks", "chisquare"})
SMALL_SAMPLE = 1000  # at most this many reference values: p-value tests (as Evidently)
DISPLAY_CATEGORIES = 20  # categories kept for the plots; the rest are summed as OTHER
_NAN = float("nan")


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column, and how its data quality changed.

    ``statistic`` is the test's statistic or distance and ``p_value`` its p-value (None for
    distances); ``drift_detected`` compares the p-value (``< threshold``) or the distance
    (``>= threshold``). ``test`` is None when a side has no values in the column (then
    ``drift_detected`` says whether only one side has none). ``exact`` is True when the
    statistic was computed on both raw samples. ``out_of_range_share`` is the share of the
    current values outside the reference's [min, max] (numeric columns); ``new_categories``
    lists the most frequent current values never seen in the reference and
    ``new_category_share`` their share (categorical columns; None when the reference profile
    dropped rare values, so new ones cannot be told apart). ``edges`` (numeric: bin edges,
    the first and last bins holding values below and above the reference's range) or
    ``categories`` label the shares in ``reference_shares`` and ``current_shares``.
    """

    column: str
    kind: Kind
    test: str | None
    statistic: float
    p_value: float | None
    threshold: float
    drift_detected: bool
    exact: bool
    reference_count: int
    current_count: int
    reference_missing_rate: float
    current_missing_rate: float
    out_of_range_share: float | None = None
    new_categories: tuple[str, ...] = ()
    new_category_share: float | None = None
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    reference_shares: tuple[float, ...] = ()
    current_shares: tuple[float, ...] = ()
    note: str = ""

    @property
    def missing_rate_change(self) -> float:
        """``current_missing_rate - reference_missing_rate``."""
        return self.current_missing_rate - self.reference_missing_rate

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (NaN becomes None)."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        out["missing_rate_change"] = _plain(self.missing_rate_change)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------- the two sides


@dataclass(frozen=True)
class Raw:
    """One column of a DataFrame: numeric values (float64) or value counts by str()."""

    rows: int
    missing: int
    values: np.ndarray | None  # numeric present values; None for categorical
    numeric_kind: str | None
    keys: np.ndarray | None = None  # categorical: distinct values (str), object array
    counts: np.ndarray | None = None  # their counts, int64
    bins: _NumBins | None = None  # numeric, from a dataset: values already binned

    @property
    def count(self) -> int:
        return self.rows - self.missing


def raw_column(s: pd.Series) -> Raw:
    numeric = _numeric_values(s)
    if numeric is not None:
        values, kind = numeric
        return Raw(len(s), len(s) - values.size, values, kind)
    missing = int(s.isna().sum())
    counts = s.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]  # a category dtype lists its unused categories too
    counts = counts.groupby(counts.index.astype(str), sort=False).sum()  # as profiles count
    keys = counts.index.to_numpy(dtype=object)
    return Raw(len(s), missing, None, None, keys, counts.to_numpy(dtype=np.int64))


def _describe(kind: Kind, numeric_kind: str | None) -> str:
    return f"numeric ({numeric_kind})" if kind == "numeric" else "categorical"


# ---------------------------------------------------------------- one column


@dataclass(frozen=True)
class Options:
    tests: Mapping[str, str]
    numeric_test: str | None
    categorical_test: str | None
    thresholds: Mapping[str, float]
    bins: int
    max_categories: int


def _choose(name: str, kind: Kind, reference_count: int, o: Options) -> tuple[str, float]:
    test = o.tests.get(name) or (o.numeric_test if kind == "numeric" else o.categorical_test)
    allowed = NUMERIC_TESTS if kind == "numeric" else CATEGORICAL_TESTS
    if test is None:
        small = reference_count <= SMALL_SAMPLE
        test = allowed[0] if small else ("wasserstein" if kind == "numeric" else "jensenshannon")
    elif test not in allowed:
        raise InvalidArgument(
            f"Test {test!r} does not apply to column {name!r}, which is {kind}; "
            f"use one of {', '.join(allowed)}."
        )
    threshold = o.thresholds.get(name, o.thresholds.get(test, DEFAULT_THRESHOLDS[test]))
    if test in P_VALUE_TESTS and not 0 < threshold < 1:
        raise InvalidArgument(
            f"The threshold for column {name!r} ({test}, a p-value test) must be between 0 "
            f"and 1, got {threshold!r}."
        )
    return test, threshold


def column_drift(
    name: str,
    ref: ColumnProfile,
    ref_raw: Raw | None,
    cur: ColumnProfile | Raw,
    o: Options,
) -> ColumnDrift:
    cur_count = cur.count
    cur_rate = cur.missing / cur.rows if isinstance(cur, Raw) else cur.missing_rate
    ref_numeric = isinstance(ref, NumericProfile)
    cur_numeric = (
        cur.numeric_kind is not None if isinstance(cur, Raw) else isinstance(cur, NumericProfile)
    )
    ref_kind: Kind = "numeric" if ref_numeric else "categorical"
    cur_kind: Kind = "numeric" if cur_numeric else "categorical"
    ref_sub = ref.kind if isinstance(ref, NumericProfile) else None
    cur_sub = cur.numeric_kind if isinstance(cur, Raw) else getattr(cur, "kind", None)
    kind = ref_kind if ref.count else cur_kind
    common: dict[str, Any] = {
        "column": name,
        "kind": kind,
        "reference_count": ref.count,
        "current_count": cur_count,
        "reference_missing_rate": ref.missing_rate,
        "current_missing_rate": cur_rate,
    }
    if ref.count == 0 or cur_count == 0:
        side = "reference" if ref.count == 0 else "current"
        both = ref.count == cur_count
        return ColumnDrift(
            test=None,
            statistic=_NAN,
            p_value=None,
            threshold=_NAN,
            drift_detected=not both,
            exact=False,
            note="no values on either side" if both else f"no values in the {side} data",
            **common,
        )
    if _describe(ref_kind, ref_sub) != _describe(cur_kind, cur_sub):
        raise InvalidArgument(
            f"Column {name!r} is {_describe(ref_kind, ref_sub)} in the reference but "
            f"{_describe(cur_kind, cur_sub)} in the current data. Give it one type on both "
            f"sides, e.g. df[{name!r}] = df[{name!r}].astype(str)."
        )
    test, threshold = _choose(name, kind, ref.count, o)
    if isinstance(ref, NumericProfile):
        return _numeric_drift(ref, ref_raw, cur, test, threshold, common)
    assert isinstance(ref, CategoricalProfile)
    return _categorical_drift(ref, ref_raw, cur, test, threshold, common)


def _numeric_drift(
    ref: NumericProfile,
    ref_raw: Raw | None,
    cur: ColumnProfile | Raw,
    test: str,
    threshold: float,
    common: dict[str, Any],
) -> ColumnDrift:
    ref_x = ref_raw.values if ref_raw is not None else None
    cur_x = cur.values if isinstance(cur, Raw) else None
    if cur_x is not None:
        b = _bin_values(ref, cur_x)
    elif isinstance(cur, Raw) and cur.bins is not None:
        b = cur.bins
    else:
        assert isinstance(cur, NumericProfile)
        b = _bin_profile(ref, cur)
    exact = ref_x is not None and cur_x is not None
    p_value: float | None = None
    if test == "ks" and ref_x is not None and cur_x is not None:
        result = stats.ks_2samp(ref_x, cur_x)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    elif test == "ks":
        statistic, p_value = _binned_ks(b, ref.count, int(b.cur.sum()))
    elif test == "wasserstein" and ref_x is not None and cur_x is not None:
        statistic = _wasserstein(ref_x, cur_x) / _norm(float(np.std(ref_x)))
    elif test == "wasserstein":
        statistic = _binned_wasserstein(b) / _norm(math.sqrt(ref.m2 / ref.count))
    elif test == "psi":
        statistic = _psi(b.ref, b.cur)
    else:
        statistic = _jensenshannon(b.ref, b.cur)
    drift = p_value < threshold if p_value is not None else statistic >= threshold
    q = _shares(b.cur)
    return ColumnDrift(
        test=test,
        statistic=float(statistic),
        p_value=p_value,
        threshold=threshold,
        drift_detected=bool(drift),
        exact=exact,
        out_of_range_share=float(q[0] + q[-1]),
        edges=tuple(b.edges.tolist()),
        reference_shares=tuple(_shares(b.ref).tolist()),
        current_shares=tuple(q.tolist()),
        **common,
    )


def _categorical_drift(
    ref: CategoricalProfile,
    ref_raw: Raw | None,
    cur: ColumnProfile | Raw,
    test: str,
    threshold: float,
    common: dict[str, Any],
) -> ColumnDrift:
    if ref_raw is not None:  # every reference value is known
        assert ref_raw.keys is not None and ref_raw.counts is not None
        ref_keys, ref_counts, ref_other = list(ref_raw.keys), ref_raw.counts, 0
    else:
        keys, ref_counts = _profile_keys(ref)
        ref_keys, ref_other = list(keys), ref.other
    if isinstance(cur, Raw):
        assert cur.keys is not None and cur.counts is not None
        cur_keys, cur_counts, cur_other = cur.keys, cur.counts, 0
    else:
        assert isinstance(cur, CategoricalProfile)
        cur_keys, cur_counts = _profile_keys(cur)
        cur_other = cur.other
    b = _bin_categories(ref_keys, ref_counts, ref_other, cur_keys, cur_counts, cur_other)
    p_value: float | None = None
    if test == "chisquare":
        statistic, p_value = _chisquare(b.ref, b.cur)
    elif test == "psi":
        statistic = _psi(b.ref, b.cur)
    else:
        statistic = _jensenshannon(b.ref, b.cur)
    drift = p_value < threshold if p_value is not None else statistic >= threshold
    labels, ref_shares, cur_shares = _top_categories(b)
    note = ""
    new_share: float | None = None
    if b.new is None:
        note = (
            f"the reference profile kept only its {len(ref_keys)} most frequent values, "
            "so new values cannot be told apart; profile with a larger max_categories"
        )
    else:
        new_share = sum(n for _, n in b.new) / common["current_count"]
    exact = ref_raw is not None and isinstance(cur, Raw)
    return ColumnDrift(
        test=test,
        statistic=float(statistic),
        p_value=p_value,
        threshold=threshold,
        drift_detected=bool(drift),
        exact=exact,
        new_categories=tuple(key for key, _ in (b.new or [])[:DISPLAY_CATEGORIES]),
        new_category_share=new_share,
        categories=labels,
        reference_shares=ref_shares,
        current_shares=cur_shares,
        note=note,
        **common,
    )


def _top_categories(b: _CatBins) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    p, q = _shares(b.ref), _shares(b.cur)
    is_other = np.array([label == OTHER for label in b.labels])
    order = np.argsort(is_other * 2.0 - np.maximum(p, q), kind="stable")  # OTHER goes last
    keep = [i for i in order[:DISPLAY_CATEGORIES] if not is_other[i]]
    rest = np.ones(len(p), dtype=bool)
    rest[keep] = False
    labels = [b.labels[i] for i in keep]
    ref_shares, cur_shares = [float(p[i]) for i in keep], [float(q[i]) for i in keep]
    if rest.any():
        labels.append(OTHER)
        ref_shares.append(float(p[rest].sum()))
        cur_shares.append(float(q[rest].sum()))
    return tuple(labels), tuple(ref_shares), tuple(cur_shares)
