"""The checks of a monitor window that need more than the window itself: the model that
made its predictions (estimated performance, permutation importance) or the window before
it (concept drift).

Each check returns the metrics it adds (numbers, for alert rules and gauges) and the
details it keeps with the window (for the report).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument
from ferryml.monitoring.concept import detect_change, prediction_errors
from ferryml.monitoring.estimated import ESTIMATED, estimate_performance

IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3

Loader = Callable[[str, int], Any]


class ModelCache:
    """Loads each model version a window's predictions name once per monitor run."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._registry: Any = None
        self._models: dict[tuple[str, int], Any] = {}

    def __call__(self, name: str, version: int) -> Any:
        key = (name, int(version))
        if key not in self._models:
            if self._registry is None:
                from ferryml.registry.models import Registry

                self._registry = Registry(self._settings)
            self._models[key] = self._registry.load(f"models:/{name}/{int(version)}")
        return self._models[key]

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


def estimated(
    frame: pd.DataFrame, features: list[str], load: Loader
) -> tuple[dict[str, float], pd.Series]:
    """``estimated_<metric>`` for the window from the models' own probabilities (CBPE),
    taking each row's logged prediction as what the model predicted; and those
    probabilities of the positive class, by row, for the realised ROC AUC."""
    scores = pd.Series(np.nan, index=frame.index, dtype=float)
    predicted = pd.Series(0, index=frame.index, dtype=int)
    for (name, version), rows in _by_model(frame):
        model = load(name, version)
        if not model.has_proba:
            raise InvalidArgument(
                f"Check 'estimated' needs probabilities but model {name}/{version} has no "
                "predict_proba; drop the check: `ferry monitor remove NAME`, then add it again "
                "without it."
            )
        proba = np.asarray(model.predict_proba(rows[features]), dtype=float)
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise InvalidArgument(
                f"Check 'estimated' is for binary classifiers; model {name}/{version} gives "
                f"{proba.shape[-1]} class probabilities."
            )
        positive = list(getattr(model.raw, "classes_", (0, 1)))[-1]
        scores[rows.index] = proba[:, 1]
        predicted[rows.index] = (rows["prediction"].to_numpy() == positive).astype(int)
    known = scores.notna().to_numpy()
    if not known.any():
        return {}, scores
    found = estimate_performance(scores[known], predictions=predicted[known])
    metrics = {f"estimated_{m}": float(found[m]) for m in ESTIMATED if math.isfinite(found[m])}
    return metrics, scores


def importance(
    frame: pd.DataFrame, features: list[str], task: str, load: Loader
) -> dict[str, Any] | None:
    """Permutation importance on the window's labelled rows, for the model version that
    made most of them; None when fewer than two rows are labelled."""
    from ferryml.registry.evaluation import evaluate_predictor

    labelled = frame[frame["label"].notna()] if "label" in frame.columns else frame.iloc[:0]
    if len(labelled) < 2:
        return None
    counts = labelled.groupby(["model", "version"], sort=False).size()
    name, version = counts.idxmax()
    rows = labelled[(labelled["model"] == name) & (labelled["version"] == version)]
    data = rows[features].assign(label=rows["label"].to_numpy())
    try:
        result = evaluate_predictor(
            load(name, int(version)),
            data,
            target="label",
            task=task,  # type: ignore[arg-type]
            importance_repeats=IMPORTANCE_REPEATS,
            max_rows_importance=IMPORTANCE_ROWS,
            plots=False,
        )
    except FerryError as e:
        raise InvalidArgument(
            f"Permutation importance on model {name}/{version} failed: {e}"
        ) from e
    return {
        "model": str(name),
        "version": int(version),
        "metric": result.importance_metric,
        "rows": len(rows),
        "features": result.importance,
    }


def concept(
    frame: pd.DataFrame, previous: pd.DataFrame | None, task: str, method: str = "adwin"
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """A change detector over the labelled errors of the previous window then this one;
    ``concept_drift`` is 1 when it fires inside this window, with where the change began."""
    stream = frame if previous is None or previous.empty else pd.concat([previous, frame])
    if "label" not in stream.columns or not stream["label"].notna().any():
        return {}, None
    stream = stream.sort_values("time", kind="stable").reset_index(drop=True)
    errors = prediction_errors(stream, task=task)  # type: ignore[arg-type]
    if len(errors) < 2:
        return {}, None
    report = detect_change(errors.to_numpy(), method=method)  # type: ignore[arg-type]
    start = frame["time"].min()
    times = stream.loc[errors.index, "time"].reset_index(drop=True)
    fired = report.detected and report.at is not None and times[report.at] >= start
    if not fired:
        return {"concept_drift": 0.0}, {"method": method, "detected": False}
    assert report.at is not None and report.began is not None
    return {"concept_drift": 1.0}, {
        "method": method,
        "detected": True,
        "at": _iso(times[report.at]),
        "began": _iso(times[report.began]),
        "error_rate_before": float(errors.iloc[: report.began].mean()) if report.began else None,
        "error_rate_after": float(errors.iloc[report.began : report.at + 1].mean()),
    }


def _by_model(frame: pd.DataFrame) -> Any:
    if "model" not in frame.columns or "version" not in frame.columns:
        return []
    return frame.groupby(["model", "version"], sort=False)


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()
