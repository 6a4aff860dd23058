"""Concept drift: a change detector run over the stream of per-prediction errors.

When the relation between features and labels changes, the model's errors change before
anything else does: ``prediction_errors`` turns a labelled prediction log into that stream
(0/1 for classifiers, absolute errors for regressors) and ``detect_change`` runs one of
river's detectors over it -- ADWIN, DDM or Page-Hinkley -- and reports where it fired and
where the change began. Pure: no store, no CLI.

Example:
    >>> errors = prediction_errors(frame, task="classification")
    >>> report = detect_change(errors, method="adwin")
    >>> report.detected, report.at, report.began
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument, MissingExtra
from ferryml.monitoring.performance import _labelled_pairs

__all__ = ["ChangeReport", "Method", "detect_change", "prediction_errors"]

Method = Literal["adwin", "ddm", "page_hinkley"]
METHODS: tuple[Method, ...] = ("adwin", "ddm", "page_hinkley")

# ferryml's defaults where they differ from river's. DDM with river's warm_start=30 took its
# minimum error rate from a few dozen points and raised a false alarm on about half of the
# stationary streams of 3,000 errors at a 10% error rate we tried; after 1,000 points that
# fell to about 6%.
_DEFAULTS: dict[Method, dict[str, Any]] = {
    "adwin": {},
    "ddm": {"warm_start": 1000},
    "page_hinkley": {},
}


@dataclass(frozen=True)
class ChangeReport:
    """What ``detect_change`` found.

    Attributes:
        detected: whether the detector fired.
        at: position (0-based, in the stream given) of the error at which it first fired.
        began: estimated position of the first error of the new concept, ``<= at``: the
            split of ``errors[: at + 1]`` into two segments of different mean that fits best
            in least squares (the maximum of the standardised CUSUM statistic).
        method: the detector used.
        params: every parameter the detector ran with, defaults included.

    ``at`` and ``began`` are positions, not labels: ``errors.index[report.at]`` is the
    prediction log's row when ``errors`` came from ``prediction_errors``.
    """

    detected: bool
    at: int | None
    began: int | None
    method: Method
    params: dict[str, Any] = field(default_factory=dict)


def prediction_errors(
    frame: pd.DataFrame,
    *,
    task: Literal["classification", "regression"],
    label_column: str = "label",
    prediction_column: str = "prediction",
) -> pd.Series:
    """The error of each labelled prediction, in the frame's order, keeping its index.

    Classification: 1.0 where the prediction differs from the label, else 0.0. Regression:
    ``|prediction - label|``. Rows without a label or a prediction are left out.

    Raises:
        InvalidArgument: not a DataFrame, a column is missing, the task is unknown, or a
            regression's labels or predictions are not numbers.
    """
    y, pred, _ = _labelled_pairs(frame, task, label_column, prediction_column)
    if task == "regression":
        values = np.abs(pred.to_numpy(dtype=float) - y.to_numpy(dtype=float))
    else:
        values = (pred.to_numpy() != y.to_numpy()).astype(float)
    return pd.Series(values, index=y.index, name="error", dtype=float)


def detect_change(
    errors: Sequence[float] | pd.Series | np.ndarray,
    *,
    method: Method = "adwin",
    **params: Any,
) -> ChangeReport:
    """Run a change detector over ``errors`` and report the first change it finds.

    Detectors are river's (``river.drift.ADWIN``, ``river.drift.binary.DDM``,
    ``river.drift.PageHinkley``) with their parameters passed through ``params``. ferryml
    changes one default: DDM's ``warm_start`` is 1000 (river: 30), because DDM estimates
    its baseline error rate from the first ``warm_start`` points and raised false alarms
    on about half of stationary streams with the shorter warm-up. Page-Hinkley's
    ``threshold`` and ``delta`` are in the errors' units: scale them for regression errors.

    Args:
        errors: one error per prediction, oldest first; 0/1 for a classifier (DDM accepts
            only these), absolute errors for a regressor. See ``prediction_errors``.
        method: ``"adwin"`` (default; any numbers), ``"ddm"`` (0/1 only) or
            ``"page_hinkley"``.
        params: the detector's parameters, by river's names.

    Returns:
        A ``ChangeReport``. ``began`` is estimated once the detector fired, from the errors
        up to there (see its docs), the same way for every method: the window ADWIN keeps
        after a cut is only accurate to one of its buckets (up to half the window), and
        river keeps no estimate for DDM or Page-Hinkley.

    Raises:
        InvalidArgument: unknown method or parameter, a parameter out of range, or errors
            that are empty, not numbers, not finite, or (DDM) not 0/1.

    Example:
        >>> report = detect_change([0.0] * 2000 + [1.0] * 200, method="page_hinkley")
        >>> report.at, report.began
        (2050, 2000)
    """
    if method not in METHODS:
        raise InvalidArgument(
            f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}."
        )
    values = _stream(errors, method)
    effective = _parameters(method, params)
    detector = _river_class(method)(**effective)
    at = None
    for position, value in enumerate(values.tolist()):
        detector.update(value)
        if detector.drift_detected:
            at = position
            break
    if at is None:
        return ChangeReport(False, None, None, method, effective)
    return ChangeReport(True, at, _change_point(values[: at + 1]), method, effective)


# -- internals ---------------------------------------------------------------------------


def _river_class(method: Method) -> type:
    try:
        from river.drift import ADWIN, PageHinkley
        from river.drift.binary import DDM
    except ImportError as e:
        raise MissingExtra(
            "Concept-drift detection needs river, which is not installed: "
            "pip install 'ferryml[river]'."
        ) from e

    return {"adwin": ADWIN, "ddm": DDM, "page_hinkley": PageHinkley}[method]


def _parameters(method: Method, given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``given``, each checked: river checks few, and ADWIN's Rust core
    aborts the call (a ``BaseException``) on some values, such as ``clock=0``."""
    signature = inspect.signature(_river_class(method))
    defaults = {
        name: p.default
        for name, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InvalidArgument(
            f"{method} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
            f"{', '.join(sorted(defaults))}."
        )
    effective = {**defaults, **_DEFAULTS[method], **given}
    for name, value in given.items():
        check = _CHECKS.get((method, name))
        if check is not None and not check[0](value):
            raise InvalidArgument(
                f"{method} parameter {name}={value!r} is out of range; it must be {check[1]}."
            )
    return effective


def _number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _integer(value) and value >= 1


def _non_negative_int(value: Any) -> bool:
    return _integer(value) and value >= 0


def _probability(value: Any) -> bool:
    return _number(value) and 0 < value < 1


def _non_negative(value: Any) -> bool:
    return _number(value) and math.isfinite(value) and value >= 0


def _positive(value: Any) -> bool:
    return _number(value) and math.isfinite(value) and value > 0


_CHECKS: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("adwin", "delta"): (_probability, "a number between 0 and 1, exclusive"),
    ("adwin", "clock"): (_positive_int, "an integer >= 1"),
    ("adwin", "max_buckets"): (_positive_int, "an integer >= 1"),
    ("adwin", "min_window_length"): (_positive_int, "an integer >= 1"),
    ("adwin", "grace_period"): (_non_negative_int, "an integer >= 0"),
    ("ddm", "warm_start"): (_non_negative_int, "an integer >= 0"),
    ("ddm", "warning_threshold"): (_positive, "a positive number"),
    ("ddm", "drift_threshold"): (_positive, "a positive number"),
    ("page_hinkley", "min_instances"): (_non_negative_int, "an integer >= 0"),
    ("page_hinkley", "delta"): (_non_negative, "a number >= 0"),
    ("page_hinkley", "threshold"): (_positive, "a positive number"),
    ("page_hinkley", "alpha"): (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    ("page_hinkley", "mode"): (lambda v: v in ("up", "down", "both"), "'up', 'down' or 'both'"),
}


def _stream(errors: Any, method: Method) -> np.ndarray:
    if isinstance(errors, str | bytes | Mapping) or not hasattr(errors, "__len__"):
        raise InvalidArgument(
            f"errors must be a sequence of numbers, one per prediction; got "
            f"{type(errors).__name__}. See prediction_errors()."
        )
    raw = errors.to_numpy() if isinstance(errors, pd.Series) else np.asarray(errors)
    if raw.ndim != 1:
        raise InvalidArgument(
            f"errors must be one-dimensional, one number per prediction; got shape {raw.shape}."
        )
    if not len(raw):
        raise InvalidArgument(
            "errors is empty: there is nothing to detect a change in. Pass at least one "
            "labelled prediction's error."
        )
    if raw.dtype == bool:
        raw = raw.astype(float)
    try:
        values = raw.astype(float)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"errors must be numbers; got dtype {raw.dtype} ({e}). For a classifier pass "
            "0/1, for a regressor absolute errors; see prediction_errors()."
        ) from e
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise InvalidArgument(
            f"errors has {len(bad)} missing or infinite values (first at position "
            f"{int(bad[0])}); drop the predictions that have no label yet."
        )
    if method == "ddm" and not np.isin(values, (0.0, 1.0)).all():
        other = float(values[~np.isin(values, (0.0, 1.0))][0])
        raise InvalidArgument(
            f"ddm takes 0/1 errors (1 = wrong prediction); got {other!r}. Use "
            "method='adwin' or 'page_hinkley' for real-valued errors."
        )
    return values


def _change_point(values: np.ndarray) -> int:
    """The position where ``values`` splits best into two segments of different means: the
    least-squares single change point, i.e. the argmax over ``k`` of
    ``|S_k - k / n * S_n| / sqrt(k * (n - k) / n)`` with ``S`` the cumulative sum."""
    n = len(values)
    if n < 2:
        return n - 1
    centred = values - values.mean()
    cumulative = np.cumsum(centred)[:-1]  # S_k - k/n S_n for k = 1 .. n-1
    k = np.arange(1, n)
    statistic = np.abs(cumulative) / np.sqrt(k * (n - k) / n)
    if not statistic.any():  # a constant stream: no split is better; say the change is now
        return n - 1
    return int(np.argmax(statistic)) + 1
