"""Confidence-based performance estimation (CBPE): close to the realised metrics while the
model is calibrated, lower when the model grows less sure, and shown beside the realised
metrics per window."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ferryml.errors import InvalidArgument
from ferryml.monitoring.estimated import (
    ESTIMATED,
    Calibrator,
    estimate_performance,
    estimate_windows,
    fit_calibration,
)
from ferryml.monitoring.performance import performance

START = pd.Timestamp("2024-06-01T00:00:00Z")


def calibrated_stream(n: int, *, seed: int, a: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from Beta(a, a) and labels drawn from them: calibrated by construction.
    A larger ``a`` puts the probabilities nearer 0.5: a less confident model."""
    rng = np.random.default_rng(seed)
    probability = rng.beta(a, a, n)
    return probability, (rng.random(n) < probability).astype(int)


def realised(probability: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    predicted = probability >= threshold
    return {
        "accuracy": skm.accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted),
        "recall": skm.recall_score(labels, predicted),
        "f1": skm.f1_score(labels, predicted),
        "roc_auc": skm.roc_auc_score(labels, probability),
    }


def overconfident(probability: np.ndarray) -> np.ndarray:
    """The same ranking pushed towards 0 and 1: logit times three."""
    logit = np.log(probability / (1 - probability))
    return 1 / (1 + np.exp(-3 * logit))


@pytest.mark.parametrize("seed", range(5))
def test_estimate_is_close_to_realised_metrics_on_a_calibrated_stream(seed: int) -> None:
    probability, labels = calibrated_stream(20_000, seed=seed)

    estimated = estimate_performance(probability)

    truth = realised(probability, labels)
    for name in ESTIMATED:
        assert estimated[name] == pytest.approx(truth[name], abs=0.02), name


def test_estimate_drops_when_the_model_grows_less_confident() -> None:
    before_p, before_y = calibrated_stream(10_000, seed=1)
    after_p, after_y = calibrated_stream(10_000, seed=2, a=3.0)

    before, after = estimate_performance(before_p), estimate_performance(after_p)

    assert after["accuracy"] < before["accuracy"] - 0.1
    assert after["f1"] < before["f1"] - 0.1
    assert after["roc_auc"] < before["roc_auc"] - 0.1
    # and the labels, once they arrive, agree
    assert after["accuracy"] == pytest.approx(realised(after_p, after_y)["accuracy"], abs=0.02)


def test_calibration_corrects_an_overconfident_model() -> None:
    reference_p, reference_y = calibrated_stream(20_000, seed=3)
    current_p, current_y = calibrated_stream(20_000, seed=4)
    scores = overconfident(current_p)
    calibrator = fit_calibration(overconfident(reference_p), reference_y)

    raw = estimate_performance(scores)
    fixed = estimate_performance(scores, calibrator=calibrator)

    truth = realised(scores, current_y)
    assert raw["accuracy"] > truth["accuracy"] + 0.05  # confidence overstates it
    for name in ESTIMATED:
        assert fixed[name] == pytest.approx(truth[name], abs=0.02), name


def test_expected_confusion_matrix_by_hand() -> None:
    estimated = estimate_performance([0.9, 0.8, 0.3, 0.6])

    # predicted positive: 0.9, 0.8, 0.6 -> TP 2.3, FP 0.7; negative: 0.3 -> TN 0.7, FN 0.3
    assert estimated["accuracy"] == pytest.approx(3.0 / 4)
    assert estimated["precision"] == pytest.approx(2.3 / 3.0)
    assert estimated["recall"] == pytest.approx(2.3 / 2.6)
    assert estimated["f1"] == pytest.approx(4.6 / (4.6 + 0.7 + 0.3))


def test_expected_roc_auc_by_hand() -> None:
    # ranked 0.8, 0.6: expected (FPR, TPR) goes (0, 0) -> (0.2/0.6, 0.8/1.4) -> (1, 1)
    estimated = estimate_performance([0.6, 0.8])

    fpr, tpr = 0.2 / 0.6, 0.8 / 1.4
    assert estimated["roc_auc"] == pytest.approx(fpr * tpr / 2 + (1 - fpr) * (tpr + 1) / 2)


def test_threshold_and_predictions_decide_what_the_model_predicted() -> None:
    probability = [0.9, 0.8, 0.3, 0.6]

    strict = estimate_performance(probability, threshold=0.7)
    given = estimate_performance(probability, predictions=[1, 1, 0, 0])

    assert strict == given
    assert strict["accuracy"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.4) / 4)


def test_undefined_metrics_are_nan() -> None:
    estimated = estimate_performance([0.1, 0.2, 0.3])

    assert math.isnan(estimated["precision"])  # nothing predicted positive
    assert estimated["accuracy"] == pytest.approx(0.8)
    assert math.isnan(estimate_performance([0.0, 0.0])["recall"])
    assert math.isnan(estimate_performance([1.0, 1.0])["roc_auc"])


def test_calibrator_none_keeps_probabilities_as_they_are() -> None:
    probability, labels = calibrated_stream(500, seed=5)

    calibrator = fit_calibration(probability, labels, method="none")

    assert np.array_equal(calibrator.transform(probability), probability)
    assert calibrator.isotonic_ is None and calibrator.n_reference_ == 500


def test_isotonic_calibrator_is_monotone_and_within_zero_one() -> None:
    probability, labels = calibrated_stream(2000, seed=6)
    calibrator = Calibrator().fit(overconfident(probability), labels)

    grid = np.linspace(0, 1, 101)
    mapped = calibrator.transform(grid)

    assert (np.diff(mapped) >= 0).all()
    assert mapped.min() >= 0 and mapped.max() <= 1


def test_calibration_takes_class_labels_with_a_positive_class() -> None:
    probability, labels = calibrated_stream(2000, seed=7)
    named = np.where(labels == 1, "churns", "stays")

    by_default = fit_calibration(1 - probability, named)  # "stays" is the larger class
    told = fit_calibration(probability, named, positive="churns")

    reference = fit_calibration(probability, labels)
    assert np.allclose(told.transform(probability), reference.transform(probability))
    assert np.allclose(
        by_default.transform(1 - probability),
        fit_calibration(1 - probability, 1 - labels).transform(1 - probability),
    )


# -- per window -----------------------------------------------------------------------------


def prediction_log(n: int = 3000, *, seed: int = 0) -> pd.DataFrame:
    """Two hours of a calibrated binary classifier's log; labels only in the first hour."""
    probability, labels = calibrated_stream(n, seed=seed)
    rng = np.random.default_rng(seed)
    times = START + pd.to_timedelta(np.sort(rng.uniform(0, 7200, n)), unit="s")
    label = labels.astype(float)
    label[times >= START + pd.Timedelta("1h")] = np.nan
    return pd.DataFrame(
        {
            "time": times,
            "version": 3,
            "prediction": (probability >= 0.5).astype(int),
            "label": label,
            "probability": probability,
        }
    )


def test_windows_show_estimated_next_to_realised_metrics() -> None:
    log = prediction_log()

    result = estimate_windows(log, by="1h")

    assert list(result.columns) == [
        "window_start",
        "window_end",
        "version",
        "rows",
        "labelled",
        *(f"estimated_{name}" for name in ESTIMATED),
        *(f"realised_{name}" for name in ESTIMATED),
    ]
    first, second = result.iloc[0], result.iloc[1]
    assert first["labelled"] == first["rows"] and second["labelled"] == 0
    assert first["estimated_accuracy"] == pytest.approx(first["realised_accuracy"], abs=0.05)
    assert second["estimated_accuracy"] == pytest.approx(first["estimated_accuracy"], abs=0.05)
    assert all(math.isnan(second[f"realised_{name}"]) for name in ESTIMATED)


def test_realised_metrics_in_windows_equal_performance() -> None:
    log = prediction_log()

    result = estimate_windows(log, by="1h")
    reference = performance(log, task="classification", probability_column="probability")

    for name in ESTIMATED:
        assert result[f"realised_{name}"].equals(reference[name]), name


def test_estimated_metrics_in_windows_equal_estimate_performance() -> None:
    log = prediction_log()
    calibrator = fit_calibration(*calibrated_stream(5000, seed=9))

    result = estimate_windows(log, by=None, calibrator=calibrator)

    expected = estimate_performance(log["probability"], calibrator=calibrator)
    for name in ESTIMATED:
        assert result[f"estimated_{name}"].iloc[0] == pytest.approx(expected[name]), name


def test_windows_without_a_label_column_or_predictions_use_the_threshold() -> None:
    log = prediction_log().drop(columns=["label", "prediction"])

    result = estimate_windows(log, prediction_column=None, threshold=0.7, count=1000)

    assert result["rows"].tolist() == [1000, 1000, 1000]
    assert (result["labelled"] == 0).all()
    expected = estimate_performance(log["probability"].iloc[:1000], threshold=0.7)
    assert result["estimated_f1"].iloc[0] == pytest.approx(expected["f1"])


def test_windows_refuse_more_than_two_classes() -> None:
    log = prediction_log(30)
    log.loc[:4, "prediction"] = 2

    with pytest.raises(InvalidArgument, match="hold 3 classes; confidence-based estimation"):
        estimate_windows(log)


def test_windows_name_a_missing_probability_column() -> None:
    with pytest.raises(InvalidArgument, match=r"frame has no column 'probability'"):
        estimate_windows(prediction_log(30).drop(columns=["probability"]))


def test_windows_refuse_an_empty_frame() -> None:
    with pytest.raises(InvalidArgument, match="frame has no rows"):
        estimate_windows(prediction_log(30).iloc[:0])


# -- bad input -----------------------------------------------------------------------------


def test_no_probabilities_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="probabilities is empty"):
        estimate_performance([])


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan")])
def test_probabilities_outside_zero_one_or_missing_are_refused(bad: float) -> None:
    with pytest.raises(InvalidArgument, match=r"1 values that are missing or outside \[0, 1\]"):
        estimate_performance([0.2, bad])


def test_predict_proba_output_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidArgument, match=r"shape \(2, 2\).*proba\[:, 1\]"):
        estimate_performance(np.array([[0.2, 0.8], [0.6, 0.4]]))


@pytest.mark.parametrize("threshold", [1.5, -1, "half"])
def test_a_threshold_outside_zero_one_is_refused(threshold: object) -> None:
    with pytest.raises(InvalidArgument, match="threshold must be"):
        estimate_performance([0.2, 0.8], threshold=threshold)  # type: ignore[arg-type]


def test_predictions_of_another_length_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="predictions has 3 rows but probabilities has 2"):
        estimate_performance([0.2, 0.8], predictions=[0, 1, 1])


def test_predictions_that_are_not_zero_or_one_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"predictions must be 0/1 .*got 'yes'"):
        estimate_performance([0.2, 0.8], predictions=["yes", "no"])


def test_an_unfitted_calibrator_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="not fitted; call fit"):
        estimate_performance([0.2, 0.8], calibrator=Calibrator())


def test_an_unknown_calibration_method_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="method must be 'isotonic' or 'none'"):
        fit_calibration([0.2, 0.8], [0, 1], method="platt")  # type: ignore[arg-type]


def test_reference_labels_of_one_class_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="hold one class only"):
        fit_calibration([0.2, 0.8], [1, 1])


def test_reference_labels_of_three_classes_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="hold 3 classes"):
        fit_calibration([0.2, 0.8, 0.5], ["a", "b", "c"])


def test_reference_of_unequal_lengths_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="has 3 rows but reference_labels has 2"):
        fit_calibration([0.2, 0.8, 0.5], [0, 1])


def test_missing_reference_labels_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="1 missing labels"):
        fit_calibration([0.2, 0.8, 0.5], [0, 1, None])


def test_windows_refuse_a_threshold_outside_zero_one() -> None:
    with pytest.raises(InvalidArgument, match=r"threshold must be a number in \[0, 1\]; got 2"):
        estimate_windows(prediction_log(30), prediction_column=None, threshold=2)
