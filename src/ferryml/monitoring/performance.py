"""Realised performance of a deployment, where feedback labels exist: the metrics of each
window of the prediction log and each model version, on the rows that have a label.

The input is the prediction log as ``ferryml.predictions.load(deployment)`` returns it
(``time``, ``version``, ``prediction``, ``label``, ...). Metrics are scikit-learn's, on the
labelled rows only: ``accuracy``, ``precision``, ``recall``, ``f1`` and ``roc_auc`` for a
classifier, ``mae`` and ``rmse`` for a regressor. Pure: no store, no CLI.

Example:
    >>> frame = ferryml.predictions.load("churn", since="2024-06-01")
    >>> performance(frame, task="classification", probability_column="probability", by="1D")
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ferryml.errors import InvalidArgument

__all__ = ["realised_performance", "METRICS", "Task", "Window", "performance", "windows"]

Task = Literal["classification", "regression"]
METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "regression": ("mae", "rmse"),
}
_SHOWN = 10  # columns quoted in an error message
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True, eq=False)
class Window:
    """A window of the prediction log and its rows (``frame``, in time order).

    For time windows ``start`` and ``end`` are the edges of pandas' resampling bin, which
    holds ``start <= time < end``: ``"1h"`` bins start on the hour, ``"W"`` bins run from
    Monday 00:00 to the next Monday (pandas labels them by their Sunday), ``"ME"`` bins are
    calendar months. For windows of ``count`` rows and for the one window of a whole frame
    they are the times of the first and the last row, both included.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    frame: pd.DataFrame


def windows(
    frame: pd.DataFrame,
    *,
    by: str | None = "1h",
    count: int | None = None,
    time_column: str = "time",
) -> list[Window]:
    """Split ``frame`` into windows of time (``by``) or of ``count`` rows.

    Args:
        frame: rows with a time column (the prediction log).
        by: a pandas frequency such as ``"15min"``, ``"1h"``, ``"1D"`` or ``"W"``: one window
            per resampling bin from the first row's bin to the last row's, empty bins
            included, as ``frame.resample(by, on=time_column)`` makes them. ``None`` (with
            no ``count``): one window of the whole frame.
        count: rows per window, in time order; the last window may hold fewer. When given,
            ``by`` is not used.
        time_column: the column of times.

    Returns:
        The windows, oldest first; none for a frame without rows.

    Raises:
        InvalidArgument: not a DataFrame, no such time column or not times, missing
            times, a frequency pandas does not know, or a count below 1.

    Example:
        >>> [len(w.frame) for w in windows(frame, by="1D")]
    """
    return list(_windows(frame, by=by, count=count, time_column=time_column))


def performance(
    frame: pd.DataFrame,
    *,
    task: Task,
    label_column: str = "label",
    prediction_column: str = "prediction",
    probability_column: str | None = None,
    positive: Any = None,
    by: str | None = "1h",
    count: int | None = None,
    group_by: Sequence[str] | str = ("version",),
    time_column: str = "time",
) -> pd.DataFrame:
    """The realised metrics of each window and each group (model version), on the rows that
    have both a label and a prediction.

    Classification: ``accuracy``, ``precision``, ``recall``, ``f1`` and ``roc_auc``. When
    the labels and predictions of the whole frame hold at most two classes, precision,
    recall and F1 are those of the ``positive`` class, and ROC AUC uses
    ``probability_column``, the probability of that class; with more classes they are
    macro averages and ROC AUC is NaN (one probability column cannot rank many classes).
    Regression: ``mae`` and ``rmse``.

    A metric that cannot be computed on a window's rows is NaN: every metric when no row
    is labelled, precision when nothing was predicted positive, recall when no label is
    positive, ROC AUC without a probability column or with one class among the labels.

    Args:
        frame: the prediction log, as ``ferryml.predictions.load(..., with_feedback=True)``
            returns it.
        task: ``"classification"`` or ``"regression"``.
        label_column, prediction_column: the true and the predicted values.
        probability_column: for a binary classifier, the column with the probability of
            the positive class (rows without one are left out of ROC AUC).
        positive: the positive class of a binary classifier; default 1 when the classes
            are 0 and 1 (or ``False``/``True``), else the larger class.
        by, count: the windows, as ``windows`` makes them; ``by=None`` and no ``count``: one
            window over the whole frame.
        group_by: columns to split each window by (default the model version); ``()``
            for none.
        time_column: the column of times.

    Returns:
        One row per window and group with at least one prediction, oldest window first:
        ``window_start``, ``window_end``, the ``group_by`` columns, ``rows`` (predictions),
        ``labelled`` (rows with a label and a prediction, the rows the metrics use), then
        the task's metrics (``METRICS[task]``).

    Raises:
        InvalidArgument: unknown task; not a DataFrame or no rows; a named column is
            missing; predictions that are lists (multi-output); labels and predictions that
            cannot be compared (mixed types, or not numbers for a regression).

    Example:
        >>> performance(frame, task="regression", by="1D")[["window_start", "version", "mae"]]
    """
    _check_task(task)
    groups = _group_columns(group_by)
    required = [label_column, prediction_column, time_column, *groups]
    if probability_column is not None:
        required.append(probability_column)
    checked = _checked_frame(frame, required)
    y, pred, labelled = _labelled_pairs(checked, task, label_column, prediction_column)
    setup = _setup(task, y, pred, positive)
    probability = _probabilities(checked, probability_column)
    records = []
    for window in _windows(checked, by=by, count=count, time_column=time_column):
        for key, part in _groups(window.frame, groups):
            mask = labelled[part.index]
            rows = part.index[mask]
            prob = None if probability is None else probability.loc[rows]
            metrics = _metrics(setup, y.loc[rows], pred.loc[rows], prob)
            records.append(
                {
                    "window_start": window.start,
                    "window_end": window.end,
                    **dict(zip(groups, key, strict=True)),
                    "rows": len(part),
                    "labelled": int(mask.sum()),
                    **metrics,
                }
            )
    columns = ["window_start", "window_end", *groups, "rows", "labelled", *METRICS[task]]
    return pd.DataFrame.from_records(records, columns=columns)


# -- shared with concept.py and estimated.py ------------------------------------------


@dataclass(frozen=True)
class _Setup:
    task: Task
    binary: bool = False
    positive: Any = None


def _check_task(task: Any) -> None:
    if task not in METRICS:
        raise InvalidArgument(
            f"task must be 'classification' or 'regression'; got {task!r}. Use "
            "'classification' for class labels, 'regression' for numbers."
        )


def _checked_frame(frame: Any, required: Sequence[str]) -> pd.DataFrame:
    """``frame`` with a fresh 0..n-1 index, once it is known to be a non-empty DataFrame
    with the columns named."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(
            f"frame must be a pandas DataFrame (the prediction log, see "
            f"ferryml.predictions.load); got {type(frame).__name__}."
        )
    if not len(frame):
        raise InvalidArgument(
            "frame has no rows: there are no predictions to evaluate. Load a window that "
            "has predictions (check the deployment and since/until)."
        )
    _require_columns(frame, required)
    return frame.reset_index(drop=True)


def _require_columns(frame: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [name for name in dict.fromkeys(names) if name not in frame.columns]
    if missing:
        have = list(map(str, frame.columns))
        shown = ", ".join(map(repr, have[:_SHOWN])) + (", ..." if len(have) > _SHOWN else "")
        raise InvalidArgument(
            f"frame has no column {' or '.join(map(repr, missing))}; its columns are "
            f"{shown or 'none'}. Name the right column (label_column, prediction_column, "
            "probability_column, time_column, group_by), or load the log with_feedback=True "
            "for labels."
        )


def _labelled_pairs(
    frame: Any, task: Any, label_column: str, prediction_column: str
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """The labels and predictions of the rows that have both, and that mask over ``frame``.
    Regression values come back as floats."""
    _check_task(task)
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(
            f"frame must be a pandas DataFrame (the prediction log, see "
            f"ferryml.predictions.load); got {type(frame).__name__}."
        )
    _require_columns(frame, [label_column, prediction_column])
    labels, predictions = frame[label_column], frame[prediction_column]
    mask = (labels.notna() & predictions.notna()).to_numpy()
    y, pred = labels[mask], predictions[mask]
    _check_flat(pred, prediction_column)
    if task == "regression":
        y = _numbers(y, label_column)
        pred = _numbers(pred, prediction_column)
    return y, pred, mask


def _check_flat(predictions: pd.Series, name: str) -> None:
    nested = predictions.map(lambda v: isinstance(v, list | tuple | dict | np.ndarray))
    if nested.any():
        example = predictions[nested].iloc[0]
        raise InvalidArgument(
            f"{name!r} holds lists, such as {example!r:.80}: a multi-output model. Monitor "
            "one output: put it in a column of its own and pass prediction_column=."
        )


def _numbers(values: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    try:
        return pd.to_numeric(values, errors="raise").astype(float)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"{name!r} holds values that are not numbers ({e}); a regression needs numbers. "
            "Use task='classification' for class labels."
        ) from e


def _setup(task: Task, y: pd.Series, pred: pd.Series, positive: Any) -> _Setup:
    if task == "regression":
        return _Setup(task)
    classes = _classes(pd.concat([y, pred], ignore_index=True))
    if len(classes) > 2:
        if positive is not None:
            raise InvalidArgument(
                f"positive={positive!r} applies to a binary classifier, but the labels and "
                f"predictions hold {len(classes)} classes; leave positive out."
            )
        return _Setup(task, binary=False)
    return _Setup(task, binary=True, positive=_positive_class(classes, positive))


def _classes(values: pd.Series) -> list[Any]:
    unique = list(pd.unique(values.to_numpy(dtype=object)))
    try:
        return sorted(unique)
    except TypeError as e:
        raise InvalidArgument(
            f"labels and predictions mix types that cannot be compared "
            f"({', '.join(sorted({type(v).__name__ for v in unique}))}); give both the same "
            "type, e.g. convert the labels with frame['label'].astype(...)."
        ) from e


def _positive_class(classes: Sequence[Any], positive: Any) -> Any:
    if positive is not None:
        return positive
    if all(isinstance(c, bool | int | float | np.number) and c in (0, 1) for c in classes):
        return 1
    return classes[-1] if classes else 1


def _metrics(
    setup: _Setup, y: pd.Series, pred: pd.Series, probability: pd.Series | None
) -> dict[str, float]:
    """scikit-learn's metrics of one window. Binary and regression metrics are computed from
    counts and sums here, as scikit-learn defines them (tests compare them): its input
    checks cost milliseconds per call, hundreds of times per frame."""
    names = METRICS[setup.task]
    if not len(y):
        return dict.fromkeys(names, math.nan)
    if setup.task == "regression":
        difference = y.to_numpy(dtype=float) - pred.to_numpy(dtype=float)
        return {
            "mae": float(np.mean(np.abs(difference))),
            "rmse": float(np.sqrt(np.mean(difference**2))),
        }
    if not setup.binary:
        return _multiclass_metrics(y, pred)
    truth = (y == setup.positive).to_numpy(dtype=bool)
    guess = (pred == setup.positive).to_numpy(dtype=bool)
    tp = int((truth & guess).sum())
    fp = int((~truth & guess).sum())
    fn = int((truth & ~guess).sum())
    out = {
        "accuracy": float((truth == guess).mean()),
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
        "roc_auc": math.nan,
    }
    if probability is not None:
        scored = probability.notna().to_numpy()
        if len(np.unique(truth[scored])) == 2:
            out["roc_auc"] = float(skm.roc_auc_score(truth[scored], probability[scored]))
    return out


def _multiclass_metrics(y: pd.Series, pred: pd.Series) -> dict[str, float]:
    truth, guess = _comparable(y), _comparable(pred)
    try:
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            truth, guess, average="macro", zero_division=np.nan
        )
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"cannot compare the labels with the predictions: {e}. Check that the label "
            "column holds the classes the model predicts, or use task='regression'."
        ) from e
    return {
        "accuracy": float(np.mean(truth == guess)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": math.nan,  # one probability column cannot rank several classes
    }


def _comparable(values: pd.Series) -> np.ndarray:
    """Class labels as one numpy type where they are numbers (JSON labels come back as
    floats next to integer predictions), as objects otherwise."""
    if all(isinstance(v, bool | int | float | np.number) for v in values):
        return values.to_numpy(dtype=float)
    return values.to_numpy(dtype=object)


def _probabilities(frame: pd.DataFrame, column: str | None) -> pd.Series | None:
    if column is None:
        return None
    values = frame[column]
    try:
        numbers = pd.to_numeric(values, errors="raise").astype(float)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"probability column {column!r} holds values that are not numbers ({e}); it must "
            "hold the probability of the positive class, one number per row."
        ) from e
    outside = numbers.notna() & ((numbers < 0) | (numbers > 1))
    if outside.any():
        raise InvalidArgument(
            f"probability column {column!r} has {int(outside.sum())} values outside [0, 1], "
            f"such as {float(numbers[outside].iloc[0])!r}; pass the probability of the "
            "positive class."
        )
    return numbers


def _group_columns(group_by: Sequence[str] | str) -> list[str]:
    if isinstance(group_by, str):
        return [group_by]
    columns = list(group_by)
    if not all(isinstance(c, str) for c in columns):
        raise InvalidArgument(
            f"group_by must be column names, such as ('version',); got {group_by!r}."
        )
    return columns


def _groups(
    frame: pd.DataFrame, columns: list[str]
) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    if not len(frame):
        return
    if not columns:
        yield (), frame
        return
    for key, part in frame.groupby(columns, dropna=False, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), part


def _windows(
    frame: Any, *, by: str | None, count: int | None, time_column: str
) -> Iterator[Window]:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgument(
            f"frame must be a pandas DataFrame (the prediction log, see "
            f"ferryml.predictions.load); got {type(frame).__name__}."
        )
    _require_columns(frame, [time_column])
    times = frame[time_column]
    if not pd.api.types.is_datetime64_any_dtype(times):
        raise InvalidArgument(
            f"time column {time_column!r} has dtype {times.dtype}, not times; convert it with "
            f"pd.to_datetime(frame[{time_column!r}], utc=True)."
        )
    if missing := int(times.isna().sum()):
        raise InvalidArgument(
            f"time column {time_column!r} has {missing} missing times; drop those rows."
        )
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise InvalidArgument(
                f"count must be an integer >= 1 (rows per window); got {count!r}."
            )
        ordered = frame.sort_values(time_column, kind="stable")
        for first in range(0, len(ordered), int(count)):
            part = ordered.iloc[first : first + int(count)]
            yield Window(part[time_column].iloc[0], part[time_column].iloc[-1], part)
        return
    if not len(frame):
        return
    if by is None:
        ordered = frame.sort_values(time_column, kind="stable")
        yield Window(ordered[time_column].iloc[0], ordered[time_column].iloc[-1], ordered)
        return
    grouper = _grouper(by, time_column)
    offset = pd.tseries.frequencies.to_offset(by)
    # Bins are consecutive intervals, so each is a slice of the rows in time order.
    ordered = frame.sort_values(time_column, kind="stable")
    sizes = ordered.groupby(grouper).size()
    stops = np.cumsum(sizes.to_numpy())
    for key, stop, size in zip(sizes.index, stops.tolist(), sizes.tolist(), strict=True):
        edge = pd.Timestamp(key)
        if grouper.label == "left":
            start, end = edge, edge + offset
        else:  # period ends ("W", "ME", ...): pandas' bins then cover whole days up to edge
            start, end = edge - offset + _DAY, edge + _DAY
        yield Window(start, end, ordered.iloc[stop - size : stop])


def _grouper(by: Any, time_column: str) -> Any:
    if not isinstance(by, str) or not by:
        raise InvalidArgument(
            f"by must be a pandas frequency such as '15min', '1h' or '1D'; got {by!r}."
        )
    try:
        return pd.Grouper(key=time_column, freq=by)
    except ValueError as e:
        raise InvalidArgument(
            f"by={by!r} is not a pandas frequency; use one such as '15min', '1h', '1D' or 'W'."
        ) from e


realised_performance = performance  # the package-level name: no clash with this module
