"""Reference profiles: what profile_frame records, merging, chunks, and the JSON round trip."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml.data.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    merge,
    profile_chunks,
    profile_frame,
)
from ferryml.errors import InvalidArgument


def _frame(n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(50.0, 10.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 1000, n),
            "e": rng.exponential(3.0, n),
            "plan": rng.choice(["free", "pro", "team", "enterprise"], n, p=[0.6, 0.25, 0.1, 0.05]),
            "city": pd.Series(rng.choice(["a", "b", "c", None], n), dtype=object),
            "flag": rng.random(n) < 0.3,
        }
    )


def _numeric(p: Profile, name: str) -> NumericProfile:
    column = p.columns[name]
    assert isinstance(column, NumericProfile)
    return column


def _categorical(p: Profile, name: str) -> CategoricalProfile:
    column = p.columns[name]
    assert isinstance(column, CategoricalProfile)
    return column


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_numeric_column_records_count_missing_and_moments_as_pandas_does() -> None:
    df = _frame()
    x = _numeric(profile_frame(df), "x")
    assert (x.count, x.missing) == (df.x.count(), df.x.isna().sum())
    assert x.mean == pytest.approx(df.x.mean(), rel=1e-12)
    assert x.std == pytest.approx(df.x.std(), rel=1e-12)
    assert (x.min, x.max) == (df.x.min(), df.x.max())
    assert x.missing_rate == pytest.approx(df.x.isna().mean())
    assert x.kind == "number"


def test_bins_are_quantiles_that_span_the_data_and_count_every_value() -> None:
    df = _frame()
    x = _numeric(profile_frame(df, bins=20), "x")
    assert len(x.edges) == 21 and len(x.counts) == 20
    assert (x.edges[0], x.edges[-1]) == (x.min, x.max)
    assert list(x.edges) == sorted(x.edges)
    assert sum(x.counts) == x.count
    assert max(x.counts) - min(x.counts) <= 2  # quantile bins hold equal shares


def test_repeated_quantiles_are_merged_into_fewer_bins() -> None:
    df = pd.DataFrame({"k": [0] * 50 + [1] * 30 + [2] * 20})
    k = _numeric(profile_frame(df, bins=10), "k")
    assert k.edges == (0.0, 1.0, 2.0)
    assert k.counts == (50, 50)  # the last bin is closed: it holds the 1s and the 2s


def test_constant_column_has_one_closed_bin() -> None:
    c = _numeric(profile_frame(pd.DataFrame({"c": [7] * 5})), "c")
    assert (c.edges, c.counts, c.std, c.min, c.max) == ((7.0, 7.0), (5,), 0.0, 7.0, 7.0)


def test_column_without_values_has_nan_statistics_and_no_bins() -> None:
    c = _numeric(profile_frame(pd.DataFrame({"c": [np.nan, np.nan]})), "c")
    assert (c.count, c.missing, c.edges, c.counts, c.missing_rate) == (0, 2, (), (), 1.0)
    assert all(math.isnan(v) for v in (c.mean, c.std, c.min, c.max))


def test_single_value_has_nan_std_like_pandas() -> None:
    c = _numeric(profile_frame(pd.DataFrame({"c": [3.0]})), "c")
    assert c.count == 1 and math.isnan(c.std)


def test_infinite_values_count_as_missing() -> None:
    c = _numeric(profile_frame(pd.DataFrame({"c": [1.0, np.inf, -np.inf, 2.0]})), "c")
    assert (c.count, c.missing, c.min, c.max) == (2, 2, 1.0, 2.0)


def test_nullable_integer_column_is_numeric() -> None:
    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    n = _numeric(profile_frame(df), "n")
    assert (n.count, n.missing, n.mean) == (2, 1, 2.0)


def test_bool_column_is_categorical() -> None:
    flag = _categorical(profile_frame(pd.DataFrame({"f": [True, False, True]})), "f")
    assert dict(flag.frequencies) == {"True": 2, "False": 1}


def test_datetimes_are_seconds_since_the_epoch_in_utc() -> None:
    naive = pd.Series(pd.to_datetime(["1970-01-01 00:01", None, "1970-01-01 00:03"]))
    aware = naive.dt.tz_localize("Europe/Paris")  # 00:01 in Paris is 23:01 UTC the day before
    p = profile_frame(pd.DataFrame({"naive": naive, "aware": aware}))
    n, a = _numeric(p, "naive"), _numeric(p, "aware")
    assert (n.kind, n.count, n.missing, n.min, n.max) == ("datetime", 2, 1, 60.0, 180.0)
    assert (a.min, a.max) == (60.0 - 3600, 180.0 - 3600)


def test_timedeltas_are_seconds() -> None:
    df = pd.DataFrame({"t": pd.to_timedelta(["1min", None, "1h"])})
    t = _numeric(profile_frame(df), "t")
    assert (t.kind, t.count, t.missing, t.min, t.max) == ("timedelta", 2, 1, 60.0, 3600.0)


def test_categorical_column_counts_values_and_nulls() -> None:
    df = _frame()
    city = _categorical(profile_frame(df), "city")
    assert dict(city.frequencies) == df.city.value_counts().to_dict()
    assert (city.missing, city.other) == (df.city.isna().sum(), 0)
    assert list(city.frequencies.values()) == sorted(city.frequencies.values(), reverse=True)


def test_values_beyond_the_cap_are_counted_as_other_keeping_the_most_frequent() -> None:
    df = pd.DataFrame({"v": ["a"] * 5 + ["b"] * 4 + ["d"] * 2 + ["c"] * 2 + ["e"]})
    v = _categorical(profile_frame(df, max_categories=3), "v")
    assert dict(v.frequencies) == {"a": 5, "b": 4, "c": 2}  # ties go to the smaller string
    assert (v.other, v.count) == (3, 14)


def test_category_dtype_leaves_out_unused_categories() -> None:
    df = pd.DataFrame({"c": pd.Categorical(["x", "y", "x"], categories=["x", "y", "z"])})
    assert dict(_categorical(profile_frame(df), "c").frequencies) == {"x": 2, "y": 1}


def test_values_that_print_alike_are_counted_together() -> None:
    df = pd.DataFrame({"m": pd.Series([1, "1", "2"], dtype=object)})
    assert dict(_categorical(profile_frame(df), "m").frequencies) == {"1": 2, "2": 1}


def test_non_string_column_names_become_strings() -> None:
    assert list(profile_frame(pd.DataFrame({0: [1], ("a", 1): [2]})).columns) == ["0", "('a', 1)"]


def test_profile_of_no_rows_has_every_column() -> None:
    p = profile_frame(
        pd.DataFrame({"x": pd.Series([], dtype=float), "s": pd.Series([], dtype=str)})
    )
    assert p.rows == 0 and _numeric(p, "x").count == 0 and _categorical(p, "s").count == 0


@pytest.mark.parametrize("split", [1, 3_333, 5_000, 9_999])
def test_merge_of_two_parts_equals_profile_of_the_whole(split: int) -> None:
    df = _frame()
    whole = profile_frame(df)
    merged = merge(profile_frame(df.iloc[:split]), profile_frame(df.iloc[split:]))
    assert merged.rows == whole.rows and list(merged.columns) == list(whole.columns)
    for name in ("x", "k", "e"):
        m, w = _numeric(merged, name), _numeric(whole, name)
        assert (m.count, m.missing, m.min, m.max) == (w.count, w.missing, w.min, w.max)
        assert m.mean == pytest.approx(w.mean, rel=1e-12)
        assert m.std == pytest.approx(w.std, rel=1e-12)
        assert sum(m.counts) == m.count
        assert (m.edges[0], m.edges[-1]) == (w.min, w.max)
    for name in ("plan", "city", "flag"):
        assert merged.columns[name] == whole.columns[name]


def test_merge_with_equal_edges_adds_bin_counts() -> None:
    p = profile_frame(_frame())
    doubled = _numeric(merge(p, p), "x")
    assert doubled.edges == _numeric(p, "x").edges
    assert doubled.counts == tuple(2 * c for c in _numeric(p, "x").counts)
    assert doubled.std == pytest.approx(_numeric(p, "x").std, rel=1e-3)


def test_merge_spreads_counts_uniformly_over_the_first_profiles_bins() -> None:
    a = profile_frame(pd.DataFrame({"v": np.arange(11.0)}), bins=2)  # edges 0, 5, 10
    b = profile_frame(pd.DataFrame({"v": np.linspace(0.0, 10.0, 100)}), bins=1)  # edges 0, 10
    v = _numeric(merge(a, b), "v")
    assert v.edges == (0.0, 5.0, 10.0)
    assert v.counts == (5 + 50, 6 + 50)


def test_merge_extends_the_outer_bins_to_the_union_and_keeps_totals() -> None:
    a = profile_frame(pd.DataFrame({"v": np.linspace(0.0, 10.0, 1000)}), bins=5)
    b = profile_frame(pd.DataFrame({"v": np.linspace(-5.0, 20.0, 777)}), bins=7)
    v = _numeric(merge(a, b), "v")
    assert (v.edges[0], v.edges[-1], v.min, v.max) == (-5.0, 20.0, -5.0, 20.0)
    assert v.edges[1:-1] == _numeric(a, "v").edges[1:-1]
    assert sum(v.counts) == v.count == 1777


def test_merge_puts_a_constant_batch_in_the_bin_holding_its_value() -> None:
    a = profile_frame(pd.DataFrame({"v": np.arange(11.0)}), bins=2)
    b = profile_frame(pd.DataFrame({"v": [7.0] * 4}))
    assert _numeric(merge(a, b), "v").counts == (5, 6 + 4)


def test_merge_beyond_the_category_cap_keeps_totals() -> None:
    a = profile_frame(pd.DataFrame({"v": list("aaabbc")}), max_categories=2)
    b = profile_frame(pd.DataFrame({"v": list("ccccdd")}), max_categories=2)
    v = _categorical(merge(a, b), "v")
    assert dict(v.frequencies) == {"c": 4, "a": 3}  # c's count in a went to a's other
    assert (v.count, v.other, sum(v.frequencies.values()) + v.other) == (12, 5, 12)


def test_merge_counts_a_column_absent_from_one_profile_as_missing() -> None:
    a = profile_frame(pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"]}))
    b = profile_frame(pd.DataFrame({"x": [3.0, 4.0, 5.0]}))
    merged = merge(a, b)
    s = _categorical(merged, "s")
    assert (merged.rows, s.count, s.missing) == (5, 2, 3)
    assert _categorical(merge(b, a), "s").missing == 3


def test_merge_gives_a_column_without_values_the_other_sides_type() -> None:
    a = profile_frame(pd.DataFrame({"x": pd.Series([None, None], dtype=object)}))
    b = profile_frame(pd.DataFrame({"x": [1.0, 2.0]}))
    x = _numeric(merge(a, b), "x")
    assert (x.count, x.missing, x.mean) == (2, 2, 1.5)


def test_merge_rejects_a_column_numeric_on_one_side_and_categorical_on_the_other() -> None:
    a = profile_frame(pd.DataFrame({"x": [1.0]}))
    b = profile_frame(pd.DataFrame({"x": ["one"]}))
    with pytest.raises(InvalidArgument, match="column 'x': it is numeric .* categorical"):
        merge(a, b)


def test_merge_rejects_what_is_not_a_profile() -> None:
    with pytest.raises(InvalidArgument, match="merge takes two Profiles, got Profile and dict"):
        merge(profile_frame(pd.DataFrame({"x": [1]})), {})  # type: ignore[arg-type]


def test_profile_chunks_equals_the_profile_of_the_concatenation() -> None:
    df = _frame()
    chunked = profile_chunks(df.iloc[i : i + 1000] for i in range(0, len(df), 1000))
    whole = profile_frame(df)
    assert chunked.rows == whole.rows
    x, w = _numeric(chunked, "x"), _numeric(whole, "x")
    assert (x.count, x.missing, x.min, x.max) == (w.count, w.missing, w.min, w.max)
    assert x.std == pytest.approx(w.std, rel=1e-12) and sum(x.counts) == x.count
    assert chunked.columns["plan"] == whole.columns["plan"]


def test_profile_chunks_rejects_no_chunks() -> None:
    with pytest.raises(InvalidArgument, match="profile_chunks got no chunks"):
        profile_chunks([])


def test_to_dict_is_strict_json_and_from_dict_rebuilds_the_profile() -> None:
    df = _frame(500)
    df["empty"] = np.nan
    df["one"] = 1.0
    df["when"] = pd.date_range("2024-01-01", periods=500, freq="h", tz="UTC")
    df["took"] = pd.to_timedelta(np.arange(500), unit="s")
    p = profile_frame(df)
    text = json.dumps(p.to_dict(), allow_nan=False)
    back = Profile.from_dict(json.loads(text))
    assert _same_json(back.to_dict(), p.to_dict())
    empty = _numeric(back, "empty")
    assert math.isnan(empty.mean) and math.isnan(empty.std) and empty.missing == 500
    assert back.columns["plan"] == p.columns["plan"]
    assert _numeric(back, "x") == _numeric(p, "x")


def test_from_dict_rejects_what_to_dict_did_not_write() -> None:
    with pytest.raises(InvalidArgument, match=r"Not a ferryml profile \(KeyError: 'format'\)"):
        Profile.from_dict({"rows": 1})
    bad_bins = profile_frame(pd.DataFrame({"x": [1.0, 2.0]})).to_dict()
    bad_bins["columns"]["x"]["counts"] = [1, 1, 1]
    with pytest.raises(InvalidArgument, match="2 edges do not bound 3 bins"):
        Profile.from_dict(bad_bins)


def test_from_dict_rejects_a_newer_format() -> None:
    with pytest.raises(InvalidArgument, match="newer ferryml .* upgrade ferryml"):
        Profile.from_dict({"format": 99, "rows": 0, "columns": {}})


def test_profile_frame_rejects_what_is_not_a_dataframe() -> None:
    with pytest.raises(InvalidArgument, match="Expected a pandas DataFrame, got list"):
        profile_frame([1, 2])  # type: ignore[arg-type]


def test_profile_frame_rejects_an_empty_column_name() -> None:
    with pytest.raises(InvalidArgument, match="Column #1 has an empty name"):
        profile_frame(pd.DataFrame({"a": [1], "": [2]}))


def test_profile_frame_rejects_names_equal_as_strings() -> None:
    with pytest.raises(InvalidArgument, match="Column name '1' appears more than once"):
        profile_frame(pd.DataFrame({1: [1], "1": [2]}))


@pytest.mark.parametrize(("option", "value"), [("bins", 0), ("bins", 2.5), ("max_categories", -1)])
def test_profile_frame_rejects_limits_that_are_not_whole_numbers(option: str, value: Any) -> None:
    with pytest.raises(InvalidArgument, match=f"{option} must be a whole number"):
        profile_frame(pd.DataFrame({"x": [1]}), **{option: value})


def test_profiles_are_immutable() -> None:
    p = profile_frame(pd.DataFrame({"s": ["a"]}))
    with pytest.raises(TypeError):
        p.columns["t"] = p.columns["s"]  # type: ignore[index]
    with pytest.raises(TypeError):
        _categorical(p, "s").frequencies["b"] = 1  # type: ignore[index]


def test_timedelta_profile_merges_with_timedelta() -> None:
    a = profile_frame(pd.DataFrame({"t": [timedelta(seconds=1)]}))
    b = profile_frame(pd.DataFrame({"t": [timedelta(seconds=3)]}))
    t = _numeric(merge(a, b), "t")
    assert (t.kind, t.mean, t.count) == ("timedelta", 2.0, 2)
