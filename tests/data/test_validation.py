"""Schemas, expectations, their ferry.yaml form and the validation report."""

from __future__ import annotations

import dataclasses
import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml.data.schema import ColumnChange, ColumnSchema, Schema, infer_schema
from ferryml.data.validation import (
    AllowedValues,
    Custom,
    ExpectationResult,
    Fresh,
    InRange,
    Matches,
    NotNull,
    RowCount,
    Unique,
    ValidationReport,
    expectations_from_config,
    validate,
)
from ferryml.errors import InvalidArgument, ValidationFailed

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "age": [34, -4, 150, 41, 999, None],
            "plan": ["free", "pro", "free", "gold", None, "pro"],
            "email": ["a@x.io", "b@x.io", "nope", None, "c@x.io", "d@x.io"],
            "ts": pd.to_datetime(
                ["2024-03-01", "2024-03-09", None, "2024-03-05", "2024-03-02", "2024-03-03"]
            ),
        }
    )


# -- schema -----------------------------------------------------------------------------------


def test_infer_schema_records_kind_nullability_range_and_few_categories() -> None:
    df = pd.DataFrame(
        {
            "i": [3, 1, 2],
            "f": [0.5, np.nan, np.inf],
            "b": [True, False, True],
            "s": ["x", "y", None],
            "c": pd.Categorical(["lo", "hi", "lo"]),
            "t": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-03"]),
            "oi": pd.Series([1, None, 3], dtype=object),
            "ob": pd.Series([True, None, False], dtype=object),
            "many": [f"v{i}" for i in range(3)],
        }
    )
    df["many"] = [f"v{i}" for i in range(3)]
    got = {c.name: c for c in infer_schema(df).columns}
    assert got["i"] == ColumnSchema("i", "integer", False, 1, 3)
    assert got["f"] == ColumnSchema("f", "float", True, 0.5, 0.5)  # inf is left out of the range
    assert got["b"] == ColumnSchema("b", "boolean", False)
    assert got["s"] == ColumnSchema("s", "string", True, categories=("x", "y"))
    assert got["c"] == ColumnSchema("c", "category", False, categories=("hi", "lo"))
    assert got["t"] == ColumnSchema(
        "t", "datetime", False, "2024-01-01T00:00:00", "2024-01-03T00:00:00"
    )
    assert got["oi"] == ColumnSchema("oi", "integer", True, 1, 3)
    assert got["ob"] == ColumnSchema("ob", "boolean", True)


def test_infer_schema_lists_categories_only_up_to_twenty_values() -> None:
    df = pd.DataFrame(
        {"few": [f"v{i % 20}" for i in range(100)], "many": [f"v{i}" for i in range(100)]}
    )
    few, many = infer_schema(df).columns
    assert few.categories is not None and len(few.categories) == 20
    assert many.categories is None


def test_schema_survives_a_json_round_trip() -> None:
    schema = infer_schema(_people())
    assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema


def test_schema_from_dict_rejects_an_unknown_kind() -> None:
    data = {"columns": [{"name": "a", "kind": "decimal", "nullable": False}]}
    with pytest.raises(InvalidArgument, match="Not a ferryml schema .*kind 'decimal' is not one"):
        Schema.from_dict(data)


def test_schema_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(InvalidArgument, match="Not a ferryml schema \\(TypeError"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "float", "nullable": 1, "x": 2}]})


def test_schema_diff_lists_added_removed_and_changed_columns() -> None:
    before = infer_schema(pd.DataFrame({"a": [1, 2], "b": ["x", None], "gone": [1, 1]}))
    after = infer_schema(pd.DataFrame({"a": [1.5, None], "b": ["x", "y"], "new": [1, 1]}))
    diff = before.diff(after)
    assert diff.added == ("new",) and diff.removed == ("gone",)
    assert diff.kind_changes == (ColumnChange("a", "integer", "float"),)
    assert diff.nullability_changes == (
        ColumnChange("a", "not null", "nullable"),
        ColumnChange("b", "nullable", "not null"),
    )
    assert diff.changed
    assert json.dumps(diff.to_dict())


def test_schema_diff_of_equal_schemas_is_empty() -> None:
    schema = infer_schema(_people())
    assert not schema.diff(schema).changed


# -- expectations -----------------------------------------------------------------------------


def test_not_null_fails_naming_the_rows_with_nulls() -> None:
    result = NotNull("age").check(_people())
    assert result == ExpectationResult(
        "not_null", "age", False, "1 of 6 null", "column 'age': 1 null value, e.g. at rows 5"
    )
    assert NotNull("id").check(_people()).passed


def test_in_range_fails_with_examples_of_values_outside() -> None:
    result = InRange("age", min=0, max=120).check(_people())
    assert not result.passed
    assert result.message == "column 'age': 3 values outside [0, 120], e.g. -4, 150, 999"
    assert result.observed == "min -4, max 999"


def test_in_range_passes_and_takes_open_bounds() -> None:
    assert InRange("id", min=1, max=6).check(_people()).passed
    result = InRange("age", max=100).check(_people())
    assert result.message == "column 'age': 2 values outside (-inf, 100], e.g. 150, 999"


def test_in_range_compares_timestamps_with_text_bounds() -> None:
    result = InRange("ts", min="2024-03-02").check(_people())
    assert (
        result.message
        == "column 'ts': 1 value outside ['2024-03-02', inf), e.g. 2024-03-01 00:00:00"
    )


def test_in_range_on_text_fails_saying_it_needs_numbers() -> None:
    people = _people()
    result = InRange("plan", min=0).check(people)
    dtype = people["plan"].dtype  # str from pandas 3 on, object before
    assert not result.passed
    assert result.message == f"column 'plan' holds {dtype} values, not numbers"


def test_allowed_values_fails_with_examples_of_other_values() -> None:
    result = AllowedValues("plan", ["free", "pro"]).check(_people())
    assert result.message == "column 'plan': 1 value not in ['free', 'pro'], e.g. 'gold'"
    assert AllowedValues("plan", ("free", "pro", "gold")).check(_people()).passed


def test_unique_fails_showing_repeated_values_and_their_counts() -> None:
    df = pd.DataFrame({"id": [7, 1, 7, 12, 7, 12, None, None]})
    result = Unique("id").check(df)
    assert result.message == "column 'id': 2 values repeated, e.g. 7 (3 times), 12 (2 times)"
    assert Unique("id").check(_people()).passed  # nulls are not duplicates


def test_matches_needs_a_full_match_of_every_present_value() -> None:
    result = Matches("email", r".+@.+").check(_people())
    assert result.message == "column 'email': 1 value not matching '.+@.+', e.g. 'nope'"
    assert not Matches("email", r"[a-d]").check(_people()).passed  # search would pass
    assert Matches("id", r"\d").check(_people()).passed  # values are matched as strings


def test_row_count_states_what_was_expected() -> None:
    df = _people()
    assert RowCount(min=100).check(df).message == "expected at least 100 rows, got 6"
    assert RowCount(max=5).check(df).message == "expected at most 5 rows, got 6"
    assert (
        RowCount(min=1, max=3).check(df).message == "expected at least 1 and at most 3 rows, got 6"
    )
    assert RowCount(min=6, max=6).check(df).passed


def test_fresh_passes_within_max_age_and_fails_beyond_it() -> None:
    assert Fresh("ts", "36h", now=NOW).check(_people()).passed  # newest: 2024-03-09 00:00
    result = Fresh("ts", "30m", now=NOW).check(_people())
    assert not result.passed
    assert result.message == (
        "column 'ts': newest value 2024-03-09T00:00:00+00:00 is 1d 12h old, over 30m"
    )


def test_fresh_passes_timestamps_in_the_future() -> None:
    result = Fresh("ts", "1h", now=datetime(2024, 3, 8, 12, 30)).check(_people())
    assert result.passed and result.observed == "newest 2024-03-09T00:00:00+00:00, -11h 30m old"


def test_fresh_takes_naive_now_as_utc_and_reads_iso_text() -> None:
    df = pd.DataFrame({"ts": ["2024-03-10T10:00:00+00:00", "2024-03-01T00:00:00Z", None]})
    assert Fresh("ts", timedelta(hours=2), now=datetime(2024, 3, 10, 12)).check(df).passed
    assert not Fresh("ts", "1h", now=datetime(2024, 3, 10, 12)).check(df).passed


def test_fresh_fails_on_a_column_without_timestamps() -> None:
    result = Fresh("plan", "1d", now=NOW).check(_people())
    assert result.message == "column 'plan': not timestamps, e.g. 'free', 'pro', 'gold'"
    result = Fresh("id", "1d", now=NOW).check(_people())
    assert not result.passed and result.message.startswith("column 'id': not timestamps")
    empty = pd.DataFrame({"ts": pd.Series([None, None], dtype="datetime64[ns]")})
    assert Fresh("ts", "1d", now=NOW).check(empty).message == "column 'ts' holds no timestamps"


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30m", timedelta(minutes=30)),
        ("36h", timedelta(hours=36)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1d 12h", timedelta(hours=36)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("7 days", timedelta(days=7)),
        ("30min", timedelta(minutes=30)),
        (3600, timedelta(hours=1)),
    ],
)
def test_fresh_reads_max_age_text(text: str | int, age: timedelta) -> None:
    assert Fresh("ts", text).max_age == age


@pytest.mark.parametrize("bad", ["7 dayz", "", "h", "-1d", "0s", -60, timedelta(0)])
def test_fresh_rejects_a_max_age_that_is_not_a_positive_duration(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="max_age"):
        Fresh("ts", bad)


def test_custom_check_returns_a_bool_or_a_bool_and_message() -> None:
    df = _people()
    assert Custom("rows", lambda d: len(d) > 3).check(df).passed
    result = Custom("ids", lambda d: (False, "ids must be even")).check(df)
    assert result == ExpectationResult("ids", None, False, "failed", "ids must be even")
    assert Custom("np", lambda d: d["id"].gt(0).all()).check(df).passed  # numpy bool


def test_custom_check_that_raises_or_returns_junk_fails_and_says_why() -> None:
    def broken(df: pd.DataFrame) -> bool:
        raise KeyError("price")

    result = Custom("prices", broken).check(_people())
    assert (result.passed, result.message) == (
        False,
        "custom check 'prices' raised KeyError: 'price'",
    )
    result = Custom("junk", lambda d: "yes").check(_people())  # type: ignore[arg-type,return-value]
    assert result.message == "custom check 'junk' returned 'yes'; return bool or (bool, message)"


@pytest.mark.parametrize(
    "expectation",
    [
        NotNull("nope"),
        InRange("nope", min=0),
        AllowedValues("nope", ["a"]),
        Unique("nope"),
        Matches("nope", "x"),
        Fresh("nope", "1d"),
    ],
)
def test_a_missing_column_is_a_failed_result_naming_the_columns(expectation: Any) -> None:
    result = expectation.check(_people())
    assert (result.passed, result.column, result.observed) == (False, "nope", "column missing")
    assert result.message == (
        "column 'nope' is missing; the data has columns 'id', 'age', 'plan', 'email', 'ts'"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: NotNull(""), "column must be a non-empty string"),
        (lambda: InRange("a"), "range on 'a' needs min, max or both"),
        (lambda: InRange("a", min=5, max=1), "range min 5 is above max 1"),
        (lambda: InRange("a", min="x", max=1), "range bound 'x' on 'a' is not a number or a date"),
        (lambda: AllowedValues("a", "abc"), "allowed values must be a list, got 'abc'"),
        (lambda: Matches("a", "("), "pattern '\\(' is not a valid regex"),
        (lambda: RowCount(), "row_count needs min, max or both"),
        (lambda: RowCount(min=-1), "row_count bounds are whole numbers >= 0, got -1"),
        (lambda: RowCount(min=True), "got True"),
        (lambda: RowCount(min=5, max=2), "row_count min 5 is above max 2"),
        (lambda: Fresh("a", "1d", now="today"), "now must be a datetime"),
        (lambda: Custom("c", 3), "custom check 'c': 3 is not callable"),
        (lambda: Custom("", len), "custom check name must be non-empty"),
    ],
)
def test_expectations_reject_bad_arguments(make: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make()


def test_expectations_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NotNull("a").column = "b"  # type: ignore[misc]


# -- ferry.yaml form -------------------------------------------------------------------------


def test_config_items_become_expectations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shop_checks.py").write_text("def few(df):\n    return len(df) < 10\n")
    monkeypatch.syspath_prepend(tmp_path)
    items = [
        {"not_null": "age"},
        {"range": {"column": "age", "min": 0, "max": 120}},
        {"allowed_values": {"column": "plan", "values": ["a", "b"]}},
        {"unique": "id"},
        {"unique": {"column": "email"}},
        {"regex": {"column": "email", "pattern": ".+@.+"}},
        {"row_count": {"min": 100}},
        {"freshness": {"column": "ts", "max_age": "7d"}},
        {"custom": "shop_checks:few"},
        {"custom": {"function": "shop_checks:few", "name": "small"}},
    ]
    got = expectations_from_config(items)
    assert got[:8] == [
        NotNull("age"),
        InRange("age", 0, 120),
        AllowedValues("plan", ("a", "b")),
        Unique("id"),
        Unique("email"),
        Matches("email", ".+@.+"),
        RowCount(min=100),
        Fresh("ts", timedelta(days=7)),
    ]
    assert isinstance(got[8], Custom) and got[8].name == "shop_checks:few"
    assert got[8].check(_people()).passed
    assert isinstance(got[9], Custom) and got[9].name == "small"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"not_null": "a"}, r"Expectations must be a list, got dict"),
        (
            ["not_null"],
            r"Expectation #1 'not_null' is invalid: write each expectation as a mapping",
        ),
        ([{"not_null": "a", "unique": "a"}], r"mapping with one key"),
        (
            [{"unique": "a"}, {"rnage": {"column": "a"}}],
            r"#2 .* rnage: unknown field \(did you mean 'range'\?\); use allowed_values, custom, ",
        ),
        (
            [{"range": {"col": "age"}}],
            r"range\.col: unknown field \(did you mean 'column'\?\); use column, max, min\. "
            r"Example \(ferry\.yaml\): - range: \{column: age, min: 0, max: 120\}",
        ),
        (
            [{"allowed_values": {"column": "plan"}}],
            r"allowed_values\.values: is required\. Example",
        ),
        (
            [{"not_null": 3}],
            r"not_null: must be a mapping; got 3\. Example \(ferry\.yaml\): - not_null: age",
        ),
        ([{"range": "age"}], r"range: must be a mapping; got 'age'\. Example"),
        (
            [{"row_count": {"min": "many"}}],
            r"row_count\.min: must be a whole number; got 'many'\. Example",
        ),
        (
            [{"freshness": {"column": "ts", "max_age": "a week"}}],
            r"freshness\.max_age: must be seconds or a duration such as 90s, .*; got 'a week'",
        ),
        ([{"regex": {"column": "e", "pattern": "["}}], r"pattern '\[' is not a valid regex"),
        ([{"custom": "no_colon"}], r"'no_colon' is not an import path 'package\.module:function'"),
        ([{"custom": "ferryml_nope:f"}], r"cannot import 'ferryml_nope:f' \(ModuleNotFoundError"),
        ([{"custom": "json:nope"}], r"cannot import 'json:nope' \(AttributeError"),
    ],
)
def test_malformed_config_items_are_named_with_what_is_wrong(items: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        expectations_from_config(items)


# -- validate and the report --------------------------------------------------------------------


def _report() -> ValidationReport:
    return validate(_people(), [NotNull("id"), InRange("age", min=0, max=120), RowCount(min=1)])


def test_validate_collects_results_in_order_with_failures_apart() -> None:
    report = _report()
    assert [r.expectation for r in report.results] == ["not_null", "range", "row_count"]
    assert not report.passed
    assert [r.expectation for r in report.failures] == ["range"]
    assert validate(_people(), [NotNull("id")]).passed


def test_report_to_dict_is_json() -> None:
    data = json.loads(json.dumps(_report().to_dict()))
    assert data["passed"] is False
    assert data["results"][1]["message"].startswith("column 'age': 3 values outside")


def test_raise_for_failures_raises_validation_failed_carrying_the_report() -> None:
    report = _report()
    with pytest.raises(ValidationFailed, match=r"1 of 3 expectations failed: column 'age'") as info:
        report.raise_for_failures()
    assert info.value.report is report
    assert isinstance(info.value, InvalidArgument)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.report == report
    validate(_people(), [NotNull("id")]).raise_for_failures()  # passing: no error


def test_html_report_is_a_standalone_page_showing_the_failure() -> None:
    page = _report().to_html(title="People")
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<title>People</title>" in page and "2 of 3 expectations passed" in page
    assert '<tr class="fail"><td>range</td>' in page
    assert "3 values outside [0, 120], e.g. -4, 150, 999" in page
    assert page.count('<td class="status">FAIL</td>') == 1


def test_html_report_escapes_values() -> None:
    df = pd.DataFrame({"plan": ["<script>alert(1)</script>"]})
    page = validate(df, [AllowedValues("plan", ["a"])]).to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_validate_rejects_what_is_not_a_dataframe_or_an_expectation() -> None:
    with pytest.raises(InvalidArgument, match="Expected a pandas DataFrame, got dict"):
        validate({"a": [1]}, [NotNull("a")])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="'not_null' is not an expectation"):
        validate(_people(), ["not_null"])  # type: ignore[list-item]
