"""Realised performance per window and model version, checked against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ferryml.errors import InvalidArgument
from ferryml.monitoring.performance import METRICS, performance, windows

START = pd.Timestamp("2024-06-01T00:00:00Z")


def prediction_log(
    n: int = 600, *, seed: int = 0, task: str = "classification", labelled: float = 0.7
) -> pd.DataFrame:
    """A frame shaped like ``ferryml.predictions.load(..., with_feedback=True)``: labels are
    floats with NaN where none arrived, as JSON labels come back."""
    rng = np.random.default_rng(seed)
    times = START + pd.to_timedelta(np.sort(rng.uniform(0, 3 * 3600, n)), unit="s")
    x = rng.normal(size=n)
    if task == "classification":
        probability = 1 / (1 + np.exp(-2 * x))
        truth = (rng.random(n) < probability).astype(float)
        prediction: np.ndarray = (probability >= 0.5).astype(int)
    else:
        probability = np.full(n, np.nan)
        truth = 3 * x + rng.normal(size=n)
        prediction = 3 * x
    truth[rng.random(n) >= labelled] = np.nan
    return pd.DataFrame(
        {
            "id": [f"{i:032x}" for i in range(n)],
            "time": times.astype("datetime64[us, UTC]"),
            "deployment": "churn",
            "route": "primary",
            "model": "churn",
            "version": rng.choice([1, 2], size=n),
            "latency_ms": rng.uniform(1, 5, n),
            "x": x,
            "prediction": prediction,
            "label": truth,
            "probability": probability,
        }
    )


def sklearn_classification(rows: pd.DataFrame) -> dict[str, float]:
    y, pred = rows["label"].to_numpy(), rows["prediction"].to_numpy()
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, pos_label=1),
        "recall": skm.recall_score(y, pred, pos_label=1),
        "f1": skm.f1_score(y, pred, pos_label=1),
        "roc_auc": skm.roc_auc_score(y, rows["probability"]),
    }


# -- windows -------------------------------------------------------------------------------


def test_time_windows_follow_pandas_resampling_bins_with_empty_bins_kept() -> None:
    times = pd.to_datetime(
        ["2024-06-01T00:05Z", "2024-06-01T00:59Z", "2024-06-01T02:00Z", "2024-06-01T02:30Z"]
    )
    frame = pd.DataFrame({"time": times, "v": [1, 2, 3, 4]})

    found = windows(frame, by="1h")

    assert [w.start for w in found] == list(
        pd.date_range("2024-06-01", periods=3, freq="h", tz="UTC")
    )
    assert [w.end - w.start for w in found] == [pd.Timedelta("1h")] * 3
    assert [w.frame["v"].tolist() for w in found] == [[1, 2], [], [3, 4]]
    resampled = frame.resample("1h", on="time")["v"].count()
    assert [len(w.frame) for w in found] == resampled.tolist()


def test_time_windows_hold_start_inclusive_end_exclusive() -> None:
    frame = pd.DataFrame({"time": pd.to_datetime(["2024-06-01T00:00Z", "2024-06-01T01:00Z"])})

    found = windows(frame, by="1h")

    assert [len(w.frame) for w in found] == [1, 1]
    assert all(
        (w.frame["time"] >= w.start).all() and (w.frame["time"] < w.end).all() for w in found
    )


def test_weekly_windows_run_monday_to_monday_as_pandas_bins_them() -> None:
    times = pd.to_datetime(["2024-06-02T00:00Z", "2024-06-02T12:00Z", "2024-06-05T00:00Z"])
    frame = pd.DataFrame({"time": times})  # 2024-06-02 is a Sunday

    found = windows(frame, by="W")

    assert [len(w.frame) for w in found] == [2, 1]
    assert (found[0].start, found[0].end) == (
        pd.Timestamp("2024-05-27T00:00Z"),
        pd.Timestamp("2024-06-03T00:00Z"),
    )


@pytest.mark.parametrize(
    ("by", "days"),
    [("7min", 3), ("15min", 5), ("1h", 20), ("1D", 400), ("3D", 400), ("W", 400)]
    + [("W-WED", 400), ("MS", 400), ("ME", 400), ("QE", 400), ("YE", 800)],
)
def test_windows_are_contiguous_half_open_and_count_as_resample(by: str, days: int) -> None:
    rng = np.random.default_rng(0)
    offsets = pd.to_timedelta(rng.uniform(0, days * 86400, 3000), unit="s")  # unsorted
    frame = pd.DataFrame({"time": pd.Timestamp("2024-01-30T13:00Z") + offsets})

    found = windows(frame, by=by)

    assert [len(w.frame) for w in found] == frame.resample(by, on="time").size().tolist()
    assert all(a.end == b.start for a, b in zip(found, found[1:], strict=False))
    for w in found:
        assert ((w.frame["time"] >= w.start) & (w.frame["time"] < w.end)).all()


def test_count_windows_hold_count_rows_in_time_order_the_last_fewer() -> None:
    log = prediction_log(25).sample(frac=1.0, random_state=1)  # shuffled rows

    found = windows(log, count=10)

    assert [len(w.frame) for w in found] == [10, 10, 5]
    ordered = log.sort_values("time")
    assert pd.concat([w.frame for w in found])["id"].tolist() == ordered["id"].tolist()
    assert found[0].start == ordered["time"].iloc[0]
    assert found[0].end == ordered["time"].iloc[9]
    assert found[2].end == ordered["time"].iloc[-1]


def test_no_frequency_and_no_count_make_one_window_of_the_whole_frame() -> None:
    log = prediction_log(30)

    (only,) = windows(log, by=None)

    assert len(only.frame) == 30
    assert (only.start, only.end) == (log["time"].min(), log["time"].max())


def test_windows_of_a_frame_without_rows_are_none() -> None:
    assert windows(prediction_log(10).iloc[:0]) == []


def test_windows_refuse_an_unknown_frequency() -> None:
    with pytest.raises(InvalidArgument, match=r"by='fortnightly' is not a pandas frequency"):
        windows(prediction_log(10), by="fortnightly")


@pytest.mark.parametrize("count", [0, -3, 2.5, True])
def test_windows_refuse_a_count_that_is_not_a_positive_integer(count: object) -> None:
    with pytest.raises(InvalidArgument, match="count must be an integer >= 1"):
        windows(prediction_log(10), count=count)  # type: ignore[arg-type]


def test_windows_refuse_a_time_column_that_is_not_times() -> None:
    frame = prediction_log(10).assign(time="yesterday")

    with pytest.raises(InvalidArgument, match=r"time column 'time' has dtype .*pd.to_datetime"):
        windows(frame)


def test_windows_refuse_missing_times() -> None:
    frame = prediction_log(10)
    frame.loc[3, "time"] = pd.NaT

    with pytest.raises(InvalidArgument, match="1 missing times; drop those rows"):
        windows(frame)


def test_windows_name_a_missing_time_column() -> None:
    with pytest.raises(InvalidArgument, match=r"no column 'when'.*time_column"):
        windows(prediction_log(10), time_column="when")


# -- performance: classification --------------------------------------------------------


def test_classification_metrics_equal_sklearn_per_window_and_version() -> None:
    log = prediction_log(900)

    result = performance(log, task="classification", probability_column="probability", by="1h")

    assert len(result) == 6  # three hours, two versions
    for row in result.itertuples():
        rows = log[
            (log["time"] >= row.window_start)
            & (log["time"] < row.window_end)
            & (log["version"] == row.version)
        ]
        labelled = rows[rows["label"].notna()]
        assert row.rows == len(rows)
        assert row.labelled == len(labelled)
        expected = sklearn_classification(labelled)
        for name in METRICS["classification"]:
            assert getattr(row, name) == pytest.approx(expected[name]), name


def test_binary_metrics_equal_sklearn_also_on_tiny_windows_where_some_are_undefined() -> None:
    rng = np.random.default_rng(11)
    n = 600
    log = pd.DataFrame(
        {
            "time": pd.date_range("2024-06-01", periods=n, freq="s", tz="UTC"),
            "version": 1,
            "prediction": (rng.random(n) < 0.2).astype(int),
            "label": np.where(rng.random(n) < 0.5, (rng.random(n) < 0.2).astype(float), np.nan),
            "probability": rng.random(n),
        }
    )

    result = performance(log, task="classification", probability_column="probability", count=4)

    undefined = 0
    parts = [log.iloc[first : first + 4] for first in range(0, n, 4)]
    for (_, row), part in zip(result.iterrows(), parts, strict=True):
        rows = part[part["label"].notna()]
        if rows.empty:
            continue
        y, pred = rows["label"].to_numpy(), rows["prediction"].to_numpy()
        options = {"zero_division": np.nan, "labels": [0, 1], "pos_label": 1}
        expected = {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, **options),
            "recall": skm.recall_score(y, pred, **options),
            "f1": skm.f1_score(y, pred, **options),
            "roc_auc": skm.roc_auc_score(y, rows["probability"]) if len(set(y)) == 2 else np.nan,
        }
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, nan_ok=True), (name, rows)
        undefined += any(np.isnan(v) for v in expected.values())
    assert undefined > 20  # the comparison covered the NaN cases


def test_result_columns_are_window_edges_groups_counts_then_metrics() -> None:
    result = performance(prediction_log(100), task="classification")

    assert list(result.columns) == [
        "window_start",
        "window_end",
        "version",
        "rows",
        "labelled",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
    ]
    assert result["window_start"].is_monotonic_increasing


def test_roc_auc_is_nan_without_a_probability_column() -> None:
    result = performance(prediction_log(200), task="classification", by=None)

    assert result["roc_auc"].isna().all()
    assert result["accuracy"].notna().all()


def test_group_by_nothing_gives_one_row_per_window() -> None:
    log = prediction_log(900)

    result = performance(log, task="classification", group_by=(), by="1h")

    assert len(result) == 3
    assert result["rows"].sum() == 900
    first = log[log["time"] < result["window_end"].iloc[0]]
    labelled = first[first["label"].notna()]
    assert result["accuracy"].iloc[0] == pytest.approx(
        skm.accuracy_score(labelled["label"], labelled["prediction"])
    )


def test_group_by_accepts_several_columns() -> None:
    log = prediction_log(300)
    log["route"] = np.where(np.arange(300) % 3 == 0, "canary", "primary")

    result = performance(log, task="classification", by=None, group_by=["version", "route"])

    assert len(result) == 4
    assert set(zip(result["version"], result["route"], strict=True)) == {
        (1, "canary"),
        (1, "primary"),
        (2, "canary"),
        (2, "primary"),
    }
    assert result["rows"].sum() == 300


def test_count_windows_per_version_cover_every_row() -> None:
    log = prediction_log(250)

    result = performance(log, task="classification", count=100, group_by=())

    assert result["rows"].tolist() == [100, 100, 50]
    assert result["labelled"].sum() == log["label"].notna().sum()


def test_metrics_are_nan_in_a_window_without_labels() -> None:
    log = prediction_log(300)
    log.loc[log["time"] < START + pd.Timedelta("1h"), "label"] = np.nan

    result = performance(log, task="classification", group_by=(), probability_column="probability")

    first = result.iloc[0]
    assert first["labelled"] == 0 and first["rows"] > 0
    assert all(math.isnan(first[name]) for name in METRICS["classification"])
    assert result.iloc[1:][list(METRICS["classification"])].notna().all().all()


def test_roc_auc_is_nan_with_one_class_among_labels_and_precision_nan_without_positives() -> None:
    log = pd.DataFrame(
        {
            "time": pd.date_range("2024-06-01", periods=4, freq="min", tz="UTC"),
            "version": 1,
            "prediction": [0, 0, 0, 0],
            "label": [0.0, 0.0, 0.0, 1.0],
            "probability": [0.1, 0.2, 0.3, 0.4],
        }
    )

    one_class = performance(log.iloc[:3], task="classification", probability_column="probability")
    no_positive_prediction = performance(log, task="classification", by=None)

    assert math.isnan(one_class["roc_auc"].iloc[0])
    assert one_class["accuracy"].iloc[0] == 1.0
    assert math.isnan(no_positive_prediction["precision"].iloc[0])
    assert no_positive_prediction["recall"].iloc[0] == 0.0


def test_string_classes_use_the_larger_class_as_positive_unless_told() -> None:
    log = prediction_log(200)
    log["prediction"] = np.where(log["prediction"] == 1, "stays", "churns")
    log["label"] = log["label"].map({1.0: "stays", 0.0: "churns"})
    labelled = log[log["label"].notna()]

    default = performance(log, task="classification", by=None, group_by=())
    churn = performance(log, task="classification", by=None, group_by=(), positive="churns")

    y, pred = labelled["label"], labelled["prediction"]
    assert default["precision"].iloc[0] == pytest.approx(
        skm.precision_score(y, pred, pos_label="stays")
    )
    assert churn["recall"].iloc[0] == pytest.approx(skm.recall_score(y, pred, pos_label="churns"))


def test_multiclass_metrics_are_sklearn_macro_averages() -> None:
    rng = np.random.default_rng(3)
    n = 400
    log = pd.DataFrame(
        {
            "time": pd.date_range("2024-06-01", periods=n, freq="min", tz="UTC"),
            "version": 1,
            "prediction": rng.integers(0, 3, n),
            "label": rng.integers(0, 3, n).astype(float),
        }
    )

    result = performance(log, task="classification", by=None)

    y, pred = log["label"], log["prediction"]
    row = result.iloc[0]
    assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert row["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert row["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert row["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert math.isnan(row["roc_auc"])


def test_labels_of_object_dtype_with_none_count_as_not_yet_labelled() -> None:
    log = prediction_log(100)
    log["label"] = [None if math.isnan(v) else int(v) for v in log["label"]]

    result = performance(log, task="classification", by=None, group_by=())

    labelled = log[log["label"].notna()]
    assert result["labelled"].iloc[0] == len(labelled)
    assert result["f1"].iloc[0] == pytest.approx(
        skm.f1_score(labelled["label"].astype(int), labelled["prediction"])
    )


# -- performance: regression ----------------------------------------------------------------


def test_regression_metrics_equal_sklearn_per_window_and_version() -> None:
    log = prediction_log(600, task="regression")

    result = performance(log, task="regression", by="30min")

    assert list(result.columns)[-2:] == ["mae", "rmse"]
    for row in result.itertuples():
        rows = log[
            (log["time"] >= row.window_start)
            & (log["time"] < row.window_end)
            & (log["version"] == row.version)
            & log["label"].notna()
        ]
        assert row.labelled == len(rows)
        assert row.mae == pytest.approx(skm.mean_absolute_error(rows["label"], rows["prediction"]))
        assert row.rmse == pytest.approx(
            skm.root_mean_squared_error(rows["label"], rows["prediction"])
        )


def test_regression_refuses_labels_that_are_not_numbers() -> None:
    log = prediction_log(20, task="regression", labelled=1.0)
    log["label"] = log["label"].astype(object)
    log.loc[4, "label"] = "high"

    with pytest.raises(InvalidArgument, match=r"'label' holds values that are not numbers"):
        performance(log, task="regression")


# -- performance: bad input -------------------------------------------------------------------


def test_unknown_task_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="task must be 'classification' or 'regression'"):
        performance(prediction_log(10), task="ranking")  # type: ignore[arg-type]


@pytest.mark.parametrize("column", ["label", "prediction"])
def test_a_missing_label_or_prediction_column_is_named(column: str) -> None:
    log = prediction_log(10).drop(columns=[column])

    with pytest.raises(InvalidArgument, match=rf"frame has no column '{column}'; its columns are"):
        performance(log, task="classification")


def test_a_missing_probability_column_is_named() -> None:
    with pytest.raises(InvalidArgument, match="frame has no column 'proba'"):
        performance(prediction_log(10), task="classification", probability_column="proba")


def test_a_missing_group_column_is_named() -> None:
    with pytest.raises(InvalidArgument, match="frame has no column 'region'"):
        performance(prediction_log(10), task="classification", group_by=("region",))


def test_an_empty_frame_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="frame has no rows: there are no predictions"):
        performance(prediction_log(10).iloc[:0], task="classification")


def test_something_other_than_a_frame_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"frame must be a pandas DataFrame .*; got list"):
        performance([{"label": 1}], task="classification")


def test_multi_output_predictions_are_refused() -> None:
    log = prediction_log(5, labelled=1.0)
    log["prediction"] = [[0.1, 0.9]] * 5

    with pytest.raises(InvalidArgument, match=r"'prediction' holds lists.*multi-output"):
        performance(log, task="classification")


def test_probabilities_outside_zero_one_are_refused() -> None:
    log = prediction_log(10)
    log.loc[2, "probability"] = 1.5

    with pytest.raises(InvalidArgument, match=r"1 values outside \[0, 1\], such as 1.5;"):
        performance(log, task="classification", probability_column="probability")


def test_positive_class_with_more_than_two_classes_is_refused() -> None:
    log = prediction_log(30, labelled=1.0)
    log.loc[:9, "prediction"] = 2

    with pytest.raises(InvalidArgument, match="positive=1 applies to a binary classifier"):
        performance(log, task="classification", positive=1)


def test_labels_and_predictions_of_mixed_types_are_refused() -> None:
    log = prediction_log(10, labelled=1.0)
    log["label"] = log["label"].map({1.0: "yes", 0.0: "no"})

    with pytest.raises(InvalidArgument, match="labels and predictions mix types"):
        performance(log, task="classification")
