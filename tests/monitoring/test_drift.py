"""Data drift: statistics equal scipy's, the default and overridden tests, profiles as the
reference, data-quality changes, the dataset verdict, the reports, and every bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

import ferryml.monitoring as monitoring
from ferryml.data.profile import NumericProfile, profile_frame
from ferryml.errors import InvalidArgument
from ferryml.monitoring import ColumnDrift, DriftReport, detect_drift

PLANS = ["free", "pro", "team", "enterprise"]


def _pair(n: int, seed: int = 0, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(delta: float) -> pd.DataFrame:
        p = [0.6, 0.25, 0.1, 0.05] if not delta else [0.4, 0.3, 0.2, 0.1]
        return pd.DataFrame(
            {
                "age": rng.normal(40 + 10 * delta, 10, n),
                "income": rng.exponential(3.0 * (1 + delta), n),
                "plan": pd.Series(rng.choice(PLANS, n, p=p), dtype="str"),
            }
        )

    return frame(0.0), frame(shift)


def _synthetic(n: int, seed: int, shifted: bool) -> pd.DataFrame:
    """25 columns (20 numeric, 5 categorical); when ``shifted``, columns 0-9 move."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(20):
        shift = 0.5 if shifted and i < 8 else 0.0
        if i % 4 == 0:
            columns[f"n{i}"] = rng.normal(i + shift, 1.0, n)
        elif i % 4 == 1:
            columns[f"n{i}"] = rng.exponential(1.0 + shift, n)
        elif i % 4 == 2:
            columns[f"n{i}"] = rng.integers(0, 100 + int(shift * 100), n)
        else:
            x = rng.normal(0, 1 + shift, n)
            x[rng.random(n) < 0.05] = np.nan
            columns[f"n{i}"] = x
    for j in range(5):
        k = 5 + 10 * j
        weights = np.arange(1, k + 1, dtype=float)
        if shifted and j < 2:
            weights = weights[::-1]
        labels = np.array([f"v{v}" for v in range(k)], dtype=object)
        columns[f"c{j}"] = pd.Series(labels[rng.choice(k, n, p=weights / weights.sum())])
    return pd.DataFrame(columns)


SHIFTED = {*(f"n{i}" for i in range(8)), "c0", "c1"}


# ---------------------------------------------------------------- exact statistics


def test_ks_on_two_frames_equals_scipy() -> None:
    ref, cur = _pair(5000, shift=0.1)
    c = detect_drift(ref, cur, tests={"age": "ks"}).columns["age"]
    expected = stats.ks_2samp(ref.age, cur.age)
    assert (c.test, c.exact) == ("ks", True)
    assert c.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert c.p_value == pytest.approx(expected.pvalue, abs=1e-12, rel=1e-9)
    assert c.drift_detected is bool(expected.pvalue < 0.05)


@pytest.mark.parametrize("rounding", [None, 0])
def test_normed_wasserstein_on_two_frames_equals_scipy(rounding: int | None) -> None:
    ref, cur = _pair(5000, shift=0.1)
    cur = cur.iloc[:3777]
    if rounding is not None:  # many ties
        ref, cur = ref.round({"income": rounding}), cur.round({"income": rounding})
    c = detect_drift(ref, cur).columns["income"]
    expected = stats.wasserstein_distance(ref.income, cur.income) / np.std(ref.income)
    assert (c.test, c.exact, c.p_value, c.threshold) == ("wasserstein", True, None, 0.1)
    assert c.statistic == pytest.approx(expected, abs=1e-9)


def test_chisquare_on_two_frames_equals_scipy_on_the_value_counts() -> None:
    ref, cur = _pair(800, shift=0.3)
    c = detect_drift(ref, cur).columns["plan"]
    table = np.array([[np.sum(df.plan == p) for p in PLANS] for df in (ref, cur)])
    expected = stats.chi2_contingency(table, correction=False)
    assert (c.test, c.threshold) == ("chisquare", 0.05)
    assert c.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert c.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert c.drift_detected


def test_categorical_jensenshannon_and_psi_equal_scipy_on_the_shares() -> None:
    ref, cur = _pair(5000, shift=0.3)
    r = np.array([np.mean(ref.plan == p) for p in PLANS])
    c = np.array([np.mean(cur.plan == p) for p in PLANS])
    js = detect_drift(ref, cur).columns["plan"]
    psi = detect_drift(ref, cur, categorical_test="psi").columns["plan"]
    assert js.test == "jensenshannon"
    assert js.statistic == pytest.approx(distance.jensenshannon(r, c), abs=1e-9)
    assert psi.statistic == pytest.approx(np.sum((r - c) * np.log(r / c)), abs=1e-9)


def test_numeric_jensenshannon_uses_the_reference_quantile_bins() -> None:
    ref, cur = _pair(5000, shift=0.2)
    edges = np.array(profile_frame(ref[["age"]]).columns["age"].edges)  # type: ignore[union-attr]
    outer = np.concatenate(([-np.inf], edges[:-1], [np.nextafter(edges[-1], np.inf), np.inf]))
    r, c = (np.histogram(df.age, outer)[0] for df in (ref, cur))
    result = detect_drift(ref, cur, tests={"age": "jensenshannon"}).columns["age"]
    assert result.statistic == pytest.approx(distance.jensenshannon(r, c), abs=1e-9)
    assert np.allclose(result.current_shares, c / c.sum())


# ---------------------------------------------------------------- choosing the test


def test_large_samples_default_to_distances_and_small_ones_to_p_values() -> None:
    big = detect_drift(*_pair(1001))
    small = detect_drift(*_pair(1000))
    assert [c.test for c in big.columns.values()] == ["wasserstein", "wasserstein", "jensenshannon"]
    assert [c.threshold for c in big.columns.values()] == [0.1, 0.1, 0.1]
    assert [c.test for c in small.columns.values()] == ["ks", "ks", "chisquare"]
    assert [c.threshold for c in small.columns.values()] == [0.05, 0.05, 0.05]


def test_per_column_tests_beat_per_kind_tests() -> None:
    report = detect_drift(
        *_pair(3000), tests={"age": "ks"}, numeric_test="psi", categorical_test="chisquare"
    )
    assert [c.test for c in report.columns.values()] == ["ks", "psi", "chisquare"]


def test_thresholds_by_column_beat_thresholds_by_test() -> None:
    report = detect_drift(*_pair(3000), thresholds={"wasserstein": 0.3, "income": 0.02})
    assert report.columns["age"].threshold == 0.3
    assert report.columns["income"].threshold == 0.02


def test_a_lower_threshold_turns_a_small_shift_into_drift() -> None:
    ref, cur = _pair(20_000, shift=0.05)
    assert not detect_drift(ref, cur).columns["age"].drift_detected
    assert detect_drift(ref, cur, thresholds={"age": 0.02}).columns["age"].drift_detected


# ---------------------------------------------------------------- known shifts, no shift


@pytest.mark.parametrize("mode", ["frames", "profile_and_frame", "profiles"])
def test_exactly_the_shifted_columns_are_flagged(mode: str) -> None:
    ref, cur = _synthetic(100_000, 1, False), _synthetic(100_000, 2, True)
    reference = ref if mode == "frames" else profile_frame(ref)
    current = profile_frame(cur) if mode == "profiles" else cur
    report = detect_drift(reference, current)
    assert set(report.drifted_columns) == SHIFTED
    assert report.drift_share == pytest.approx(10 / 25)
    assert not report.dataset_drift


def test_samples_of_one_distribution_flag_at_most_5_percent_of_columns() -> None:
    flagged = tested = 0
    for seed in range(4):
        reference = profile_frame(_synthetic(50_000, 10 + seed, False))
        report = detect_drift(reference, _synthetic(50_000, 100 + seed, False))
        flagged, tested = flagged + len(report.drifted_columns), tested + len(report.columns)
    assert flagged / tested <= 0.05


def test_p_value_tests_on_small_samples_flag_at_most_5_percent_of_columns() -> None:
    flagged = tested = 0
    for seed in range(20):
        report = detect_drift(_synthetic(600, 10 + seed, False), _synthetic(600, 500 + seed, False))
        assert {c.test for c in report.columns.values()} == {"ks", "chisquare"}
        flagged, tested = flagged + len(report.drifted_columns), tested + len(report.columns)
    assert flagged / tested <= 0.05


# ---------------------------------------------------------------- profiles as the reference


def test_binned_statistics_from_a_profile_track_the_exact_ones() -> None:
    ref, cur = _pair(50_000, shift=0.3)
    profile = profile_frame(ref)
    for test in ("ks", "wasserstein"):
        exact = detect_drift(ref, cur, numeric_test=test).columns["age"]
        binned = detect_drift(profile, cur, numeric_test=test).columns["age"]
        assert binned.exact is False
        assert binned.statistic == pytest.approx(exact.statistic, rel=0.25)
        assert binned.drift_detected == exact.drift_detected
    same = detect_drift(profile, _pair(50_000, seed=9)[1]).columns["age"]
    assert same.statistic < 0.03


def test_binned_ks_statistic_never_exceeds_the_exact_one() -> None:
    ref, cur = _pair(20_000, shift=0.05)
    exact = detect_drift(ref, cur, numeric_test="ks").columns["income"]
    binned = detect_drift(profile_frame(ref), cur, numeric_test="ks").columns["income"]
    assert binned.statistic <= exact.statistic + 1e-12
    assert 0 <= binned.p_value <= 1  # type: ignore[operator]


def test_psi_and_jensenshannon_agree_between_frames_and_a_profile() -> None:
    ref, cur = _pair(20_000, shift=0.1)
    for test in ("psi", "jensenshannon"):
        a = detect_drift(ref, cur, numeric_test=test, categorical_test=test)
        b = detect_drift(profile_frame(ref), cur, numeric_test=test, categorical_test=test)
        for name in ("age", "income", "plan"):
            assert a.columns[name].statistic == pytest.approx(b.columns[name].statistic, 1e-9)


def test_a_stored_profile_dict_works_as_the_reference() -> None:
    ref, cur = _pair(5000, shift=0.5)
    stored = json.loads(json.dumps(profile_frame(ref).to_dict()))
    from ferryml.data.profile import Profile

    report = detect_drift(Profile.from_dict(stored), cur)
    assert set(report.drifted_columns) == {"age", "income", "plan"}


def test_current_profile_is_rebinned_onto_the_reference_bins() -> None:
    ref, cur = _pair(20_000, shift=0.5)
    report = detect_drift(profile_frame(ref), profile_frame(cur))
    c = report.columns["age"]
    assert sum(c.current_shares) == pytest.approx(1.0)
    assert c.out_of_range_share is not None and c.out_of_range_share > 0
    assert set(report.drifted_columns) == {"age", "income", "plan"}


def test_constant_reference_column_compares_without_error() -> None:
    ref = pd.DataFrame({"x": np.full(2000, 3.0)})
    cur = pd.DataFrame({"x": np.r_[np.full(1900, 3.0), np.full(100, 4.0)]})
    for reference in (ref, profile_frame(ref)):
        c = detect_drift(reference, cur).columns["x"]
        assert c.statistic == pytest.approx(0.05 / 0.001)  # W = 0.05, the std floor 0.001
        assert c.out_of_range_share == pytest.approx(0.05)


# ---------------------------------------------------------------- data quality


def test_missing_rate_change_and_out_of_range_share_are_reported() -> None:
    ref = pd.DataFrame({"x": np.r_[np.arange(100.0), [np.nan] * 10]})
    cur = pd.DataFrame({"x": np.r_[np.arange(-5.0, 95.0), [np.nan] * 30, [1e6, 99.0]]})
    for reference in (ref, profile_frame(ref)):
        c = detect_drift(reference, cur).columns["x"]
        assert c.reference_missing_rate == pytest.approx(10 / 110)
        assert c.current_missing_rate == pytest.approx(30 / 132)
        assert c.missing_rate_change == pytest.approx(30 / 132 - 10 / 110)
        assert c.out_of_range_share == pytest.approx(6 / 102)  # -5..-1 and 1e6; 99 is max


def test_new_categories_are_listed_with_their_share() -> None:
    ref = pd.DataFrame({"city": ["a", "b", "c"] * 100})
    cur = pd.DataFrame({"city": ["a", "b"] * 100 + ["z"] * 30 + ["y"] * 20 + [None] * 5})
    for reference in (ref, profile_frame(ref)):
        c = detect_drift(reference, cur).columns["city"]
        assert c.new_categories == ("z", "y")
        assert c.new_category_share == pytest.approx(50 / 250)
        assert c.current_missing_rate == pytest.approx(5 / 255)
        assert "z" in c.categories


def test_new_categories_are_unknown_when_the_profile_dropped_rare_values() -> None:
    ref = pd.DataFrame({"k": [f"v{i % 80}" for i in range(4000)]})
    c = detect_drift(profile_frame(ref, max_categories=10), ref).columns["k"]
    assert c.new_category_share is None and c.new_categories == ()
    assert "max_categories" in c.note
    assert not c.drift_detected


def test_a_column_without_values_on_one_side_is_flagged_without_a_test() -> None:
    ref = pd.DataFrame({"x": np.arange(2000.0), "y": [np.nan] * 2000})
    cur = pd.DataFrame({"x": [np.nan] * 500, "y": [np.nan] * 500})
    report = detect_drift(ref, cur)
    x, y = report.columns["x"], report.columns["y"]
    assert (x.test, x.drift_detected, x.note) == (None, True, "no values in the current data")
    assert (y.test, y.drift_detected) == (None, False)
    assert math.isnan(x.statistic) and x.current_missing_rate == 1.0


def test_datetime_and_bool_columns_are_compared() -> None:
    days = pd.date_range("2026-01-01", periods=3000, freq="h")
    ref = pd.DataFrame({"when": days, "flag": np.arange(3000) % 3 == 0})
    cur = pd.DataFrame({"when": days + pd.Timedelta(days=200), "flag": np.arange(3000) % 2 == 0})
    report = detect_drift(ref, cur)
    assert report.columns["when"].kind == "numeric" and report.columns["when"].drift_detected
    assert report.columns["flag"].kind == "categorical"
    assert report.columns["flag"].categories[:2] in (("False", "True"), ("True", "False"))


# ---------------------------------------------------------------- dataset and predictions


def test_dataset_drift_is_the_share_of_drifted_features_against_the_threshold() -> None:
    ref, cur = _synthetic(20_000, 1, False), _synthetic(20_000, 2, True)
    profile = profile_frame(ref)
    assert detect_drift(profile, cur, share_threshold=0.4).dataset_drift  # 10/25 >= 0.4
    assert not detect_drift(profile, cur, share_threshold=0.41).dataset_drift
    half = detect_drift(profile, cur, columns=["n0", "n1", "n10", "n11"])
    assert (half.drift_share, half.dataset_drift) == (0.5, True)


def test_prediction_columns_are_tested_apart_from_the_features() -> None:
    ref, cur = _pair(5000, shift=0.5)
    ref["score"], cur["score"] = ref.age / 100, ref.age / 100
    report = detect_drift(ref, cur, prediction="score", columns=["plan"])
    assert list(report.columns) == ["plan"] and list(report.prediction) == ["score"]
    assert report.prediction_drift is False
    shifted = detect_drift(ref, cur.assign(score=cur.age / 100), prediction=["score"])
    assert list(shifted.columns) == ["age", "income", "plan"]
    assert shifted.prediction_drift is True and shifted.drift_share == 1.0
    assert detect_drift(ref, cur).prediction_drift is None


def test_current_only_columns_are_ignored() -> None:
    ref, cur = _pair(2000)
    report = detect_drift(ref, cur.assign(request_id=np.arange(len(cur))))
    assert list(report.columns) == ["age", "income", "plan"]


# ---------------------------------------------------------------- the reports


def test_to_dict_is_json_with_every_result() -> None:
    ref, cur = _pair(3000, shift=0.5)
    cur.loc[:10, "age"] = np.nan
    data = detect_drift(ref.assign(score=1.0), cur.assign(score=1.0), prediction="score").to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["dataset_drift"] is True and data["drifted_columns"] == ["age", "income", "plan"]
    age = data["columns"]["age"]
    assert {"test", "statistic", "p_value", "threshold", "drift_detected"} <= set(age)
    assert age["missing_rate_change"] == pytest.approx(11 / 3000)
    assert data["prediction"]["score"]["kind"] == "numeric"


def test_html_report_is_one_small_self_contained_page_with_a_plot_per_column() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(90)})
    for j in range(10):
        ref[f"c{j}"] = [f"category-{v}" for v in rng.integers(0, 40, n)]
    cur = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    cur["x0"] += 1.0
    html = detect_drift(profile_frame(ref), cur).to_html(title="Drift <weekly>")
    assert html.startswith("<!DOCTYPE html>") and "Drift &lt;weekly&gt;" in html
    assert len(html.encode()) < 2 * 2**20
    assert html.count("<svg") == 100
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "<script" not in html


def test_report_types_are_exported_from_the_package() -> None:
    assert {"ColumnDrift", "DriftReport", "detect_drift"} <= set(monitoring.__all__)
    report = detect_drift(*_pair(100))
    assert isinstance(report, DriftReport)
    assert all(isinstance(c, ColumnDrift) for c in report.columns.values())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tests": {"age": "kolmogorov"}}, "Unknown test for column 'age' 'kolmogorov'"),
        ({"tests": {"plan": "ks"}}, "Test 'ks' does not apply to column 'plan', which is cat"),
        ({"tests": {"nope": "ks"}}, "tests= names column 'nope', which is not compared"),
        ({"numeric_test": "chisquare"}, "Unknown numeric_test 'chisquare'; use one of ks"),
        ({"categorical_test": "wasserstein"}, "Unknown categorical_test 'wasserstein'"),
        ({"thresholds": {"nope": 0.1}}, "thresholds= key 'nope' is neither a compared column"),
        ({"thresholds": {"age": -1}}, "Threshold for 'age' must be above 0, got -1"),
        ({"thresholds": {"ks": "0.1"}}, "Threshold for 'ks' must be a number"),
        ({"thresholds": {"age": 2}, "tests": {"age": "ks"}}, "must be between 0 and 1"),
        ({"share_threshold": 0}, r"share_threshold must be in \(0, 1\], got 0"),
        ({"columns": ["age", "nope"]}, "The reference data has no column 'nope'"),
        ({"prediction": "score"}, "The reference data has no column 'score'"),
        ({"columns": []}, "No columns to compare"),
        ({"bins": 0}, "bins must be a whole number >= 1, got 0"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        detect_drift(*_pair(2000), **kwargs)


def test_a_column_missing_from_the_current_data_is_named() -> None:
    ref, cur = _pair(100)
    with pytest.raises(InvalidArgument, match="The current data has no column 'plan'; it has"):
        detect_drift(ref, cur.drop(columns="plan"))
    with pytest.raises(InvalidArgument, match="The current data has no column 'plan'"):
        detect_drift(profile_frame(ref), profile_frame(cur.drop(columns="plan")))


def test_empty_data_is_rejected() -> None:
    ref, cur = _pair(100)
    with pytest.raises(InvalidArgument, match="The current DataFrame has no rows"):
        detect_drift(ref, cur.iloc[:0])
    with pytest.raises(InvalidArgument, match="The reference DataFrame has no rows"):
        detect_drift(ref.iloc[:0], cur)
    with pytest.raises(InvalidArgument, match="The reference profile has no rows"):
        detect_drift(profile_frame(ref.iloc[:0]), cur)


def test_a_column_typed_differently_on_the_two_sides_is_rejected() -> None:
    ref, cur = _pair(100)
    with pytest.raises(
        InvalidArgument,
        match=r"Column 'age' is numeric \(number\) in the reference but categorical in the "
        r"current data\. Give it one type on both sides",
    ):
        detect_drift(ref, cur.assign(age=cur.age.astype(str)))
    dated = cur.assign(age=pd.date_range("2026-01-01", periods=100))
    with pytest.raises(InvalidArgument, match=r"numeric \(number\) in the reference but numeric"):
        detect_drift(profile_frame(ref), dated)


def test_other_inputs_than_frames_and_profiles_are_rejected() -> None:
    ref, _ = _pair(100)
    with pytest.raises(InvalidArgument, match="current must be a pandas DataFrame or a ferryml"):
        detect_drift(ref, ref.to_numpy())
    with pytest.raises(InvalidArgument, match="appears more than once in the current frame"):
        detect_drift(ref, pd.concat([ref, ref], axis=1))


def test_profile_bins_are_what_the_reference_recorded() -> None:
    ref, cur = _pair(3000)
    profile = profile_frame(ref, bins=7)
    c = detect_drift(profile, cur).columns["age"]
    age = profile.columns["age"]
    assert isinstance(age, NumericProfile)
    assert c.edges[1:-1] == age.edges and len(c.reference_shares) == len(age.counts) + 2
