"""Estimated performance of a binary classifier before its labels arrive, from its
calibrated confidence: confidence-based performance estimation (CBPE, as NannyML calls it).

A calibrated probability ``p`` says that the row is positive with probability ``p``, so each
row adds ``p`` to the expected true positives and ``1 - p`` to the false positives when the
model predicted positive, ``1 - p`` to the true negatives and ``p`` to the false negatives
when it predicted negative. The metrics of that expected confusion matrix estimate the
realised ones; they fall when the model grows less sure of itself, which it often does
before labels show a drop. The estimate holds while the model stays calibrated, i.e. under
a shift of the features (covariate shift), not under a change of the relation between
features and labels (concept drift: see ``ferryml.monitoring.concept``).

Calibrate on a labelled reference set, such as the validation set, with
``fit_calibration``; ``estimate_performance`` estimates from an array of probabilities and
``estimate_windows`` for each window of a prediction log, beside the realised metrics where
labels exist. Pure: no store, no CLI.

Example:
    >>> calibrator = fit_calibration(validation_probabilities, validation_labels)
    >>> estimate_performance(todays_probabilities, calibrator=calibrator)["accuracy"]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument
from ferryml.monitoring.performance import (
    _check_flat,
    _checked_frame,
    _classes,
    _group_columns,
    _groups,
    _labelled_pairs,
    _metrics,
    _positive_class,
    _probabilities,
    _Setup,
    _windows,
)

__all__ = ["ESTIMATED", "Calibrator", "estimate_performance", "estimate_windows", "fit_calibration"]

ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")
CalibrationMethod = Literal["isotonic", "none"]


class Calibrator:
    """Maps a model's probabilities of the positive class to calibrated ones.

    ``method="isotonic"`` learns a monotone map from a labelled reference set (scikit-learn's
    ``IsotonicRegression``); ``"none"`` keeps the probabilities as they are, for a model
    already calibrated. Keeps scikit-learn's contract: ``fit`` checks the parameters and
    returns ``self``; what it learned ends in ``_``.

    Attributes:
        isotonic_: the fitted ``IsotonicRegression`` (``None`` for ``method="none"``).
        n_reference_: rows of the reference set.
    """

    def __init__(self, method: CalibrationMethod = "isotonic") -> None:
        self.method = method

    def fit(self, probabilities: Any, labels: Any) -> Calibrator:
        """Learn the map from ``probabilities`` (of the positive class) and ``labels``
        (1/``True`` for the positive class, 0/``False`` else).

        Raises:
            InvalidArgument: unknown method, lengths differ, no rows, probabilities outside
                [0, 1] or missing, labels that are not 0/1 or hold one class only.
        """
        if self.method not in ("isotonic", "none"):
            raise InvalidArgument(
                f"method must be 'isotonic' or 'none' (already calibrated); got {self.method!r}."
            )
        scores = _probability_array(probabilities, "reference_probabilities")
        truth = _binary_labels(labels)
        if len(truth) != len(scores):
            raise InvalidArgument(
                f"reference_probabilities has {len(scores)} rows but reference_labels has "
                f"{len(truth)}; give one label per probability."
            )
        if len(np.unique(truth)) < 2:
            raise InvalidArgument(
                "reference_labels hold one class only; calibration needs positive and "
                "negative rows. Use a larger reference set."
            )
        self.isotonic_: Any = None
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.isotonic_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.isotonic_.fit(scores, truth)
        self.n_reference_ = len(scores)
        return self

    def transform(self, probabilities: Any) -> np.ndarray:
        """The calibrated probabilities of ``probabilities``.

        Raises:
            InvalidArgument: not fitted yet, or probabilities outside [0, 1] or missing.
        """
        if not hasattr(self, "n_reference_"):
            raise InvalidArgument(
                "This Calibrator is not fitted; call fit() first, or use fit_calibration()."
            )
        scores = _probability_array(probabilities, "probabilities")
        if self.isotonic_ is None:
            return scores
        return np.asarray(self.isotonic_.predict(scores), dtype=float)

    def __repr__(self) -> str:
        return f"Calibrator(method={self.method!r})"


def fit_calibration(
    reference_probabilities: Any,
    reference_labels: Any,
    *,
    method: CalibrationMethod = "isotonic",
    positive: Any = None,
) -> Calibrator:
    """A ``Calibrator`` fitted on a labelled reference set (e.g. the validation set).

    Args:
        reference_probabilities: the model's probabilities of the positive class.
        reference_labels: the true classes, one per probability.
        method: ``"isotonic"`` (default) or ``"none"`` for probabilities already calibrated.
        positive: the positive class among the labels; default 1 when they are 0 and 1 (or
            ``False``/``True``), else the larger class.

    Raises:
        InvalidArgument: see ``Calibrator.fit``; labels with more than two classes.

    Example:
        >>> calibrator = fit_calibration(model.predict_proba(X_val)[:, 1], y_val)
    """
    labels = pd.Series(_one_dimensional(reference_labels, "reference_labels"), dtype=object)
    if labels.isna().any():
        raise InvalidArgument(
            f"reference_labels has {int(labels.isna().sum())} missing labels; drop those rows."
        )
    classes = _classes(labels)
    if len(classes) > 2:
        raise InvalidArgument(
            f"reference_labels hold {len(classes)} classes; confidence-based estimation "
            "here is for binary classifiers."
        )
    target = _positive_class(classes, positive)
    return Calibrator(method).fit(reference_probabilities, (labels == target).to_numpy())


def estimate_performance(
    probabilities: Any,
    *,
    calibrator: Calibrator | None = None,
    threshold: float = 0.5,
    predictions: Any = None,
) -> dict[str, float]:
    """Expected accuracy, precision, recall, F1 and ROC AUC of a binary classifier, from
    its probabilities of the positive class, without labels (CBPE).

    Each row counts as positive with its calibrated probability ``p``, which fills an
    expected confusion matrix (see the module's docs); accuracy, precision, recall and F1
    are that matrix's. ROC AUC is the area under the expected ROC curve: rows ranked by the
    model's own probability, each threshold's expected true and false positive rates
    accumulated from ``p`` and ``1 - p`` (NannyML's estimate, ranking by the uncalibrated
    score so the ties isotonic calibration makes do not merge distinct scores). Each is a
    ratio of expectations, close to the expected metric on a few hundred rows or more.

    Args:
        probabilities: the model's probabilities of the positive class, one per row.
        calibrator: from ``fit_calibration``; ``None`` uses the probabilities as they are.
        threshold: the model predicted positive where its probability is at least this.
        predictions: what the model predicted (1/``True`` positive, 0/``False`` negative),
            when it did not simply threshold its probability; overrides ``threshold``.

    Returns:
        ``{"accuracy", "precision", "recall", "f1", "roc_auc"}``: NaN where undefined
        (precision with nothing predicted positive; recall and ROC AUC when every
        calibrated probability is 0, or for ROC AUC every one is 1).

    Raises:
        InvalidArgument: no rows, probabilities outside [0, 1] or missing, a threshold
            outside [0, 1], predictions that are not 0/1 or of another length.

    Example:
        >>> estimate_performance([0.9, 0.8, 0.3, 0.6])["accuracy"]
        0.75
    """
    scores = _probability_array(probabilities, "probabilities")
    if not len(scores):
        raise InvalidArgument("probabilities is empty; give one probability per prediction.")
    _check_threshold(threshold)
    calibrated = scores if calibrator is None else calibrator.transform(scores)
    if predictions is None:
        predicted = scores >= threshold
    else:
        predicted = _binary_labels(predictions, "predictions")
        if len(predicted) != len(scores):
            raise InvalidArgument(
                f"predictions has {len(predicted)} rows but probabilities has {len(scores)}; "
                "give one prediction per probability."
            )
    return _estimate(scores, calibrated, predicted.astype(bool))


def estimate_windows(
    frame: pd.DataFrame,
    *,
    probability_column: str = "probability",
    calibrator: Calibrator | None = None,
    threshold: float = 0.5,
    label_column: str = "label",
    prediction_column: str | None = "prediction",
    positive: Any = None,
    by: str | None = "1h",
    count: int | None = None,
    group_by: Sequence[str] | str = ("version",),
    time_column: str = "time",
) -> pd.DataFrame:
    """Estimated metrics of each window and group of a binary classifier's prediction log,
    next to the realised ones where labels exist.

    The estimate uses every row with a probability (labelled or not), the realised metrics
    only the rows with a label, as ``performance`` computes them.

    Args:
        frame: the prediction log, as ``ferryml.predictions.load`` returns it.
        probability_column: the model's probability of the positive class.
        calibrator: from ``fit_calibration``; ``None`` uses the probabilities as they are.
        threshold: used when ``prediction_column`` is ``None``: the model predicted positive
            where the probability is at least this.
        label_column: the true classes (NaN or ``None`` where not yet known; the column may
            be absent when no label has arrived).
        prediction_column: the classes the model predicted.
        positive: the positive class; default 1 when the classes are 0 and 1 (or
            ``False``/``True``), else the larger class.
        by, count, group_by, time_column: the windows and groups, as for ``performance``.

    Returns:
        One row per window and group with at least one prediction: ``window_start``,
        ``window_end``, the ``group_by`` columns, ``rows``, ``labelled``, then
        ``estimated_<metric>`` and ``realised_<metric>`` for accuracy, precision, recall,
        f1 and roc_auc (realised NaN where no row is labelled).

    Raises:
        InvalidArgument: not a DataFrame or no rows, a column missing, probabilities outside
            [0, 1], more than two classes, labels and predictions that cannot be compared.
    """
    _check_threshold(threshold)
    groups = _group_columns(group_by)
    required = [probability_column, time_column, *groups]
    if prediction_column is not None:
        required.append(prediction_column)
    checked = _checked_frame(frame, required)
    if label_column not in checked.columns:
        checked = checked.assign(**{label_column: None})
    probability = _probabilities(checked, probability_column)
    assert probability is not None  # a column was named
    if prediction_column is None:
        prediction_column = "__predicted__"
        checked[prediction_column] = (probability >= threshold).astype(int)
        predicted_classes = [0, 1]
    else:
        _check_flat(checked[prediction_column], prediction_column)
        predicted_classes = list(checked[prediction_column].dropna())
    y, pred, labelled = _labelled_pairs(checked, "classification", label_column, prediction_column)
    classes = _classes(pd.Series([*predicted_classes, *y], dtype=object))
    if len(classes) > 2:
        raise InvalidArgument(
            f"the labels and predictions hold {len(classes)} classes; confidence-based "
            "estimation here is for binary classifiers."
        )
    target = _positive_class(classes, positive)
    setup = _Setup("classification", binary=True, positive=target)
    records = []
    for window in _windows(checked, by=by, count=count, time_column=time_column):
        for key, part in _groups(window.frame, groups):
            scored = part.index[probability.loc[part.index].notna().to_numpy()]
            estimated = dict.fromkeys(ESTIMATED, math.nan)
            if len(scored):
                scores = probability.loc[scored].to_numpy(dtype=float)
                estimated = _estimate(
                    scores,
                    scores if calibrator is None else calibrator.transform(scores),
                    (checked.loc[scored, prediction_column] == target).to_numpy(dtype=bool),
                )
            rows = part.index[labelled[part.index]]
            realised = _metrics(setup, y.loc[rows], pred.loc[rows], probability.loc[rows])
            records.append(
                {
                    "window_start": window.start,
                    "window_end": window.end,
                    **dict(zip(groups, key, strict=True)),
                    "rows": len(part),
                    "labelled": len(rows),
                    **{f"estimated_{name}": estimated[name] for name in ESTIMATED},
                    **{f"realised_{name}": realised[name] for name in ESTIMATED},
                }
            )
    columns = [
        "window_start",
        "window_end",
        *groups,
        "rows",
        "labelled",
        *(f"estimated_{name}" for name in ESTIMATED),
        *(f"realised_{name}" for name in ESTIMATED),
    ]
    return pd.DataFrame.from_records(records, columns=columns)


# -- internals ---------------------------------------------------------------------------


def _estimate(
    scores: np.ndarray, calibrated: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    tp = float(calibrated[predicted].sum())
    fp = float((1 - calibrated[predicted]).sum())
    fn = float(calibrated[~predicted].sum())
    tn = float((1 - calibrated[~predicted]).sum())
    precision = tp / (tp + fp) if tp + fp > 0 else math.nan
    recall = tp / (tp + fn) if tp + fn > 0 else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else math.nan
    return {
        "accuracy": (tp + tn) / len(scores),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": _expected_roc_auc(scores, calibrated),
    }


def _expected_roc_auc(scores: np.ndarray, calibrated: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    ranked, weight = scores[order], calibrated[order]
    tp, fp = np.cumsum(weight), np.cumsum(1 - weight)
    last = np.r_[ranked[1:] != ranked[:-1], True]  # tied scores are one threshold
    tp, fp = tp[last], fp[last]
    positives, negatives = tp[-1], fp[-1]
    if positives <= 0 or negatives <= 0:
        return math.nan
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    return float(np.trapezoid(tpr, fpr))


def _check_threshold(threshold: Any) -> None:
    number = isinstance(threshold, int | float | np.number) and not isinstance(threshold, bool)
    if not number or not 0 <= threshold <= 1:
        raise InvalidArgument(f"threshold must be a number in [0, 1]; got {threshold!r}.")


def _one_dimensional(values: Any, name: str) -> np.ndarray:
    if isinstance(values, str | bytes) or values is None:
        raise InvalidArgument(f"{name} must be a sequence, one value per row; got {values!r}.")
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if array.ndim != 1:
        raise InvalidArgument(
            f"{name} must be one-dimensional, one value per row; got shape {array.shape}. "
            "For predict_proba's output pass the positive class's column, e.g. proba[:, 1]."
        )
    return array


def _probability_array(values: Any, name: str) -> np.ndarray:
    array = _one_dimensional(values, name)
    try:
        scores = array.astype(float)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"{name} must be numbers in [0, 1]; got dtype {array.dtype}.") from e
    bad = np.flatnonzero(~((scores >= 0) & (scores <= 1)))  # NaN fails both
    if len(bad):
        raise InvalidArgument(
            f"{name} has {len(bad)} values that are missing or outside [0, 1], such as "
            f"{scores[bad[0]]!r} at position {int(bad[0])}; pass the probability of the "
            "positive class."
        )
    return scores


def _binary_labels(values: Any, name: str = "reference_labels") -> np.ndarray:
    array = _one_dimensional(values, name)
    if array.dtype == bool:
        return array.astype(int)
    valid = np.array([isinstance(v, bool | int | float | np.number) and v in (0, 1) for v in array])
    if not valid.all():
        bad = array[~valid][0]
        bad = bad.item() if isinstance(bad, np.generic) else bad
        raise InvalidArgument(f"{name} must be 0/1 (1 = the positive class); got {bad!r}.")
    return array.astype(int)
