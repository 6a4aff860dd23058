"""Evaluate a loaded model on a labelled frame: metrics overall and per slice, business
metrics, permutation importance, prediction latency and plots. Pure: no store, no CLI.

Permutation importance is computed here with numpy rather than through
``sklearn.inspection.permutation_importance``: a predictor is not an estimator, and one loop
over the columns needs no adapter class, no scorer object and no joblib workers.
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ferryml.errors import FerryError, InvalidArgument, MissingExtra
from ferryml.registry.flavors.base import Predictor

__all__ = ["BusinessMetric", "Evaluation", "SliceResult", "SliceSpec", "evaluate_predictor"]

Task = Literal["classification", "regression"]
BusinessMetric = Callable[[np.ndarray, np.ndarray, pd.DataFrame], float]
"""``fn(y_true, y_pred, features) -> float``: two arrays and the rows' feature frame."""

MAX_VALUES = 20  # a column with at most this many distinct values is sliced by value
DEFAULT_BINS = 4  # quantile bins for a numeric column with more values
MAX_SLICES = 100  # a non-numeric column with more distinct values is refused
LATENCY_CALLS = 3
BUILT_IN = {
    "classification": {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"},
    "regression": {"mae", "rmse", "r2"},
}
CHECK_TARGET = "Check that the target holds what the model predicts."


@dataclass(frozen=True)
class SliceSpec:
    """Slice by ``column``: by its values, or by ``bins`` quantile bins (numeric only).
    Without ``bins``, numeric columns with more than 20 distinct values get 4 bins."""

    column: str
    bins: int | None = None


@dataclass(frozen=True)
class SliceResult:
    """The metrics on one slice's rows (``value`` like ``"plan=pro"`` or
    ``"age in (30.0, 45.0]"``). Metrics undefined on the slice are left out."""

    column: str
    value: str
    rows: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate_predictor`` measured. ``importance`` maps each feature to the mean
    drop of ``importance_metric`` when its values are shuffled, largest first; ``labels``
    orders the rows (true) and columns (predicted) of ``confusion``; ``plots`` maps file
    names to PNG bytes."""

    task: Task
    rows: int
    metrics: dict[str, float]
    slices: tuple[SliceResult, ...] = ()
    importance: dict[str, float] = field(default_factory=dict)
    importance_metric: str | None = None
    latency_ms_per_row: float = 0.0
    confusion: list[list[int]] | None = None
    labels: list[Any] | None = None
    plots: dict[str, bytes] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``plots`` becomes the sorted list of plot names."""
        return {**asdict(self), "plots": sorted(self.plots)}


@dataclass(frozen=True)
class _Setup:
    task: Task
    business: Mapping[str, BusinessMetric]
    classes: np.ndarray | None = None  # every class seen or known to the model, sorted
    proba_classes: np.ndarray | None = None  # the class of each predict_proba column
    binary: bool = False
    positive: Any = None  # the larger label of a binary task
    positive_column: int = 0  # its column in predict_proba


def evaluate_predictor(
    predictor: Predictor,
    data: pd.DataFrame,
    *,
    target: str,
    task: Task,
    slices: Sequence[str | SliceSpec] = (),
    business_metrics: Mapping[str, BusinessMetric] | None = None,
    importance: bool = True,
    importance_repeats: int = 5,
    max_rows_importance: int = 2000,
    plots: bool = True,
    random_state: int = 0,
) -> Evaluation:
    """Evaluate ``predictor`` on ``data``, whose ``target`` column holds the true values.

    Metrics are scikit-learn's: for classification ``accuracy``, ``precision``, ``recall``,
    ``f1`` -- of the positive class (the larger label) when binary, macro averages when
    multiclass -- and, when the predictor has ``predict_proba``, ``roc_auc`` (one-vs-rest
    macro when multiclass) and ``log_loss``; for regression ``mae``, ``rmse``, ``r2``. Each
    business metric is stored under its name. Importance uses at most
    ``max_rows_importance`` rows and ROC AUC (binary with probabilities), accuracy (other
    classifiers) or R2. Plots need matplotlib (``ferryml[plot]``).

    Raises:
        InvalidArgument: bad data, target, task or slice; the model failed to predict; a
            business metric failed or returned something other than a finite number.

    Example::

        ev = evaluate_predictor(model, test, target="churned", task="classification",
                                slices=["plan", SliceSpec("age", bins=5)])
        ev.metrics["roc_auc"], ev.slices[0].metrics["f1"]
    """
    specs = _check_input(data, target, task, slices, importance_repeats, max_rows_importance)
    business = dict(business_metrics or {})
    if clash := sorted(BUILT_IN[task] & set(business)):
        raise InvalidArgument(f"business metric names {clash} clash with built-ins; rename them.")
    features = data.drop(columns=[target])
    y = data[target].to_numpy(dtype=float) if task == "regression" else data[target].to_numpy()
    times, pred = [], np.empty(0)
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        pred = _call(predictor, "predict", features)
        times.append(time.perf_counter() - start)
    proba, setup = None, _Setup(task, business)
    if task == "regression":
        try:
            pred = pred.astype(float)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(
                f"the model predicted non-numeric values ({pred.dtype}) for a regression; "
                "use task='classification' for a classifier."
            ) from e
    else:
        if callable(getattr(predictor, "predict_proba", None)):
            proba = _call(predictor, "predict_proba", features)
        setup = _classification_setup(predictor, y, pred, proba, business)
    try:
        overall = _metrics(setup, y, pred, proba, features)
        confusion = None
        if setup.classes is not None:
            confusion = skm.confusion_matrix(y, pred, labels=setup.classes).tolist()
    except (TypeError, ValueError) as e:
        if isinstance(e, FerryError):
            raise
        raise InvalidArgument(
            f"cannot compare predictions with {target!r}: {e}. {CHECK_TARGET}"
        ) from e
    results = []
    for spec in specs:
        for value, mask in _slice_masks(data[spec.column], spec):
            sub_proba = None if proba is None else proba[mask]
            sub = _metrics(setup, y[mask], pred[mask], sub_proba, features[mask])
            results.append(SliceResult(spec.column, value, int(mask.sum()), sub))
    imp: tuple[dict[str, float], str | None] = ({}, None)
    if importance and len(data) >= 2:
        rng = np.random.default_rng(random_state)
        imp = _importance(
            predictor, setup, features, y, importance_repeats, max_rows_importance, rng
        )
    return Evaluation(
        task=task,
        rows=len(data),
        metrics=overall,
        slices=tuple(results),
        importance=imp[0],
        importance_metric=imp[1],
        latency_ms_per_row=statistics.median(times) / len(data) * 1000.0,
        confusion=confusion,
        labels=None if setup.classes is None else setup.classes.tolist(),
        plots=_plots(setup, y, pred, proba, confusion) if plots else {},
    )


def _check_input(
    data: Any, target: str, task: str, slices: Sequence[str | SliceSpec], repeats: int, rows: int
) -> list[SliceSpec]:
    if task not in BUILT_IN:
        raise InvalidArgument(f"task must be 'classification' or 'regression'; got {task!r}.")
    if not isinstance(data, pd.DataFrame):
        raise InvalidArgument(f"data must be a pandas DataFrame; got {type(data).__name__}.")
    columns = list(data.columns)
    if target not in columns:
        raise InvalidArgument(
            f"target column {target!r} is not in the data (columns: {columns}). "
            "Pass target= the column that holds the true values."
        )
    if len(data) == 0:
        raise InvalidArgument("data has no rows; evaluate on a labelled frame with rows.")
    y = data[target]
    if missing := int(y.isna().sum()):
        raise InvalidArgument(
            f"target column {target!r} has {missing} missing values; drop or fill those rows."
        )
    if task == "regression" and not _is_numeric(y):
        raise InvalidArgument(
            f"target column {target!r} has dtype {y.dtype}, but regression needs numbers; "
            "convert it, or use task='classification'."
        )
    if repeats < 1 or rows < 2:
        raise InvalidArgument(
            "importance_repeats must be >= 1 and max_rows_importance >= 2; "
            f"got {repeats} and {rows}."
        )
    specs = [SliceSpec(item) if isinstance(item, str) else item for item in slices]
    for item, spec in zip(slices, specs, strict=True):
        if not isinstance(spec, SliceSpec):
            raise InvalidArgument(f"a slice is a column name or a SliceSpec; got {item!r}.")
        if spec.column not in columns:
            raise InvalidArgument(
                f"slice column {spec.column!r} is not in the data (columns: {columns}). "
                "Add the column or drop the slice."
            )
        numeric = _is_numeric(data[spec.column])
        if spec.bins is not None and (spec.bins < 1 or not numeric):
            raise InvalidArgument(
                f"bins={spec.bins!r} for slice column {spec.column!r}: bins need a numeric "
                "column and a count >= 1; pass SliceSpec(column) to slice by value."
            )
        if not numeric and (count := data[spec.column].nunique()) > MAX_SLICES:
            raise InvalidArgument(
                f"slice column {spec.column!r} has {count} distinct values, more than "
                f"{MAX_SLICES} slices; slice by a coarser column."
            )
    return specs


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _call(predictor: Any, method: str, features: pd.DataFrame) -> np.ndarray:
    """``predict`` (one value per row) or ``predict_proba`` (one column per class)."""
    proba = method == "predict_proba"
    try:
        out = np.asarray(getattr(predictor, method)(features))
    except FerryError:
        raise  # e.g. the loaded model's own signature check: already says what to do
    except Exception as e:  # noqa: BLE001 - the model's own failure, whatever its type
        raise InvalidArgument(
            f"the model failed to {'predict probabilities' if proba else 'predict'}: "
            f"{type(e).__name__}: {e}. "
            "Check that the data has the columns the model was trained on."
        ) from e
    if not proba and out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape[:1] != (len(features),) or out.ndim != 1 + proba or (proba and out.shape[1] < 2):
        raise InvalidArgument(
            f"the model's {method} returned shape {out.shape} for {len(features)} rows; "
            f"expected {'(rows, classes >= 2)' if proba else '(rows,)'}."
        )
    return out.astype(float) if proba else out


def _classification_setup(
    predictor: Any,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    business: Mapping[str, BusinessMetric],
) -> _Setup:
    try:
        classes = np.unique(np.concatenate([y, pred]))
    except TypeError as e:
        raise InvalidArgument(
            f"the true labels ({y.dtype}) and the predictions ({pred.dtype}) cannot be "
            f"compared: {e}. {CHECK_TARGET}"
        ) from e
    proba_classes = None
    if proba is not None:
        known = getattr(predictor, "classes_", None)
        if known is not None and len(known) == proba.shape[1]:
            proba_classes = np.asarray(known)
        elif len(classes) == proba.shape[1]:
            proba_classes = classes  # sklearn's convention: columns follow the sorted labels
        else:
            raise InvalidArgument(
                f"predict_proba returned {proba.shape[1]} columns but {len(classes)} classes "
                "appear in the data, and the model has no classes_ to say which column is "
                "which; evaluate on data that holds every class."
            )
        if unknown := set(classes.tolist()) - set(proba_classes.tolist()):
            raise InvalidArgument(
                f"classes {sorted(map(str, unknown))} are not among the model's classes "
                f"{proba_classes.tolist()}. {CHECK_TARGET}"
            )
        classes = np.unique(np.concatenate([classes, proba_classes]))
    positive = classes[-1]
    column = 0 if proba_classes is None else int(np.flatnonzero(proba_classes == positive)[0])
    return _Setup(
        "classification", business, classes, proba_classes, len(classes) <= 2, positive, column
    )


def _metrics(
    s: _Setup, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, features: pd.DataFrame
) -> dict[str, float]:
    out: dict[str, Any] = {}
    if s.task == "regression":
        out["mae"] = skm.mean_absolute_error(y, pred)
        out["rmse"] = skm.root_mean_squared_error(y, pred)
        if len(y) >= 2:  # R2 is undefined on one row
            out["r2"] = skm.r2_score(y, pred)
    else:
        avg: dict[str, Any] = {"average": "macro", "zero_division": 0}
        if s.binary:
            avg.update(average="binary", pos_label=s.positive)
        out["accuracy"] = skm.accuracy_score(y, pred)
        out["precision"] = skm.precision_score(y, pred, **avg)
        out["recall"] = skm.recall_score(y, pred, **avg)
        out["f1"] = skm.f1_score(y, pred, **avg)
        if proba is not None and s.proba_classes is not None:
            present = len(np.unique(y))  # ROC AUC needs both classes / every class
            if s.binary and present == 2:
                out["roc_auc"] = skm.roc_auc_score(y == s.positive, proba[:, s.positive_column])
            elif not s.binary and present == len(s.proba_classes):
                out["roc_auc"] = skm.roc_auc_score(
                    y, proba, multi_class="ovr", average="macro", labels=s.proba_classes
                )
            out["log_loss"] = skm.log_loss(y, proba, labels=s.proba_classes)
    for name, fn in s.business.items():
        try:
            value = fn(y, pred, features)
        except Exception as e:  # noqa: BLE001 - user code may fail in any way
            raise InvalidArgument(
                f"business metric {name!r} failed: {type(e).__name__}: {e}. It is called as "
                "fn(y_true, y_pred, features) and must return a number."
            ) from e
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise InvalidArgument(
                f"business metric {name!r} returned {value!r}; it must return a finite number."
            )
        out[name] = value
    return {k: float(v) for k, v in out.items()}


def _slice_masks(col: pd.Series, spec: SliceSpec) -> list[tuple[str, np.ndarray]]:
    name, missing = spec.column, col.isna().to_numpy()
    out: list[tuple[str, np.ndarray]] = []
    if _is_numeric(col) and (~missing).any() and (spec.bins or col.nunique() > MAX_VALUES):
        values = col.to_numpy(dtype=float, na_value=np.nan)
        q = np.linspace(0.0, 1.0, (spec.bins or DEFAULT_BINS) + 1)
        edges = np.unique(np.quantile(values[~missing], q))
        index = np.searchsorted(edges[1:-1], values, side="left")
        for i in range(len(edges) - 1):  # bin i is (edge i, edge i+1]; the first is closed
            lo, hi = round(float(edges[i]), 6), round(float(edges[i + 1]), 6)
            out.append((f"{name} in {'(['[i == 0]}{lo}, {hi}]", (index == i) & ~missing))
    if not out:  # by value; also a numeric column whose values are all equal
        seen = list(col.dropna().unique())
        with contextlib.suppress(TypeError):  # mixed types keep the order of appearance
            seen = sorted(seen)
        out = [(f"{name}={v}", (col == v).to_numpy(dtype=bool) & ~missing) for v in seen]
    out.append((f"{name} is missing", missing))
    return [(label, mask) for label, mask in out if mask.any()]


def _importance(
    predictor: Predictor,
    s: _Setup,
    features: pd.DataFrame,
    y: np.ndarray,
    repeats: int,
    max_rows: int,
    rng: np.random.Generator,
) -> tuple[dict[str, float], str]:
    if len(features) > max_rows:
        rows = np.sort(rng.choice(len(features), size=max_rows, replace=False))
        features, y = features.iloc[rows], y[rows]
    score: Callable[[pd.DataFrame], float]
    if s.task == "regression":
        metric, score = "r2", lambda f: skm.r2_score(y, _call(predictor, "predict", f))
    elif s.binary and s.proba_classes is not None and len(np.unique(y)) == 2:
        positive, column = y == s.positive, s.positive_column
        metric = "roc_auc"
        score = lambda f: skm.roc_auc_score(  # noqa: E731
            positive, _call(predictor, "predict_proba", f)[:, column]
        )
    else:
        metric, score = "accuracy", lambda f: skm.accuracy_score(y, _call(predictor, "predict", f))
    frame = features.copy()
    base, out = score(frame), {}
    for name in frame.columns:
        original, drops = frame[name], []
        for _ in range(repeats):
            # ExtensionArray.take keeps the dtype (categorical, nullable, string)
            frame[name] = original.array.take(rng.permutation(len(frame)))
            drops.append(base - score(frame))
        frame[name] = original
        out[str(name)] = float(np.mean(drops))
    return dict(sorted(out.items(), key=lambda kv: -kv[1])), metric


def _plots(
    s: _Setup,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    confusion: list[list[int]] | None,
) -> dict[str, bytes]:
    try:  # Figure, never pyplot: no global backend or figure registry is touched
        from matplotlib.figure import Figure
    except ImportError as e:
        raise MissingExtra(
            "Plots need matplotlib, which is not installed: pip install 'ferryml[plot]', "
            "or pass plots=False."
        ) from e

    def png(title: str, xlabel: str, ylabel: str, draw: Callable[[Any], object]) -> bytes:
        fig = Figure(figsize=(5, 4), layout="constrained")
        ax = fig.add_subplot()
        draw(ax)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    if s.task == "regression":

        def residuals(ax: Any) -> None:
            ax.scatter(pred, y - pred, s=8, alpha=0.6)
            ax.axhline(0.0, color="grey", linewidth=1)

        return {"residuals.png": png("Residuals", "predicted", "actual - predicted", residuals)}
    assert s.classes is not None and confusion is not None
    names = [str(c) for c in s.classes.tolist()]

    def matrix(ax: Any) -> None:
        ax.imshow(np.asarray(confusion), cmap="Blues")
        ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 5 else 0)
        ax.set_yticks(range(len(names)), names)
        for i, row in enumerate(confusion if len(names) <= MAX_VALUES else []):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center")

    out = {"confusion_matrix.png": png("Confusion matrix", "predicted", "true", matrix)}
    if s.binary and proba is not None and len(np.unique(y)) == 2:
        from sklearn.calibration import calibration_curve

        frac, mean = calibration_curve(y == s.positive, proba[:, s.positive_column], n_bins=10)

        def calibration(ax: Any) -> None:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
            ax.plot(mean, frac, marker="o", label="model")
            ax.legend(loc="upper left")

        out["calibration.png"] = png(
            "Calibration", "mean predicted probability", "fraction true", calibration
        )
    return out
