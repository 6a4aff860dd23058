"""Local explanations: why a model gave one row its output, as SHAP values. Each feature
gets a contribution; with the base value (the mean output over background rows) they add
up to the output exactly.

The background is the sample of the training data stored with the model
(``log_model(..., training_data=X)``), else the model's input example. The explainer is
SHAP's model-agnostic Kernel SHAP, whose first call is fast: the masker-based explainers
compile numba code for about ten seconds on their first call in a process. SHAP is the
optional extra ``ferryml[shap]``, imported on first use.
"""

from __future__ import annotations

import io
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ferryml.errors import Conflict, FerryError, InvalidArgument, MissingExtra
from ferryml.registry.package import LoadedModel
from ferryml.registry.signature import as_frame

__all__ = ["METHOD", "Explanation", "explain", "explain_row"]

METHOD = "shap.KernelExplainer"
MAX_CELLS = 20_000_000  # values (rows x features) the model scores for one explanation
EXACT_FEATURES = 11  # up to this many features every coalition is scored: exact values
_SEED = 0
# Kernel SHAP samples coalitions from numpy's global generator: seeded, and restored
# after, under this lock, so that one row always gets the same explanation.
_GLOBAL_RANDOM = threading.Lock()

Scorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Explanation:
    """One row's ``output`` split into per-feature ``contributions``:
    ``base_value + sum(contributions.values()) == output`` (up to rounding)."""

    output: float
    base_value: float  # the mean output over the background rows
    contributions: dict[str, float]  # in the signature's column order
    explains: str  # what the output is: "prediction" or "probability of class 1 (...)"
    background: str  # where the background rows came from: "training data" | "input example"
    background_rows: int
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "base_value": self.base_value,
            "contributions": self.contributions,
            "explains": self.explains,
            "method": self.method,
            "background": {"source": self.background, "rows": self.background_rows},
        }


def explain(model_uri: str, row: Any) -> Explanation:
    """Explain the output the model at ``model_uri`` gives ``row``.

    Args:
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/3`` or ``runs:/ID/PATH``.
        row: one row: a mapping of column to value, a one-row DataFrame or a Series.

    Raises:
        MissingExtra: SHAP is not installed (``pip install 'ferryml[shap]'``).
        InvalidArgument: not exactly one row, or a column is missing or of the wrong type.
        Conflict: the model has no background rows, or gives no numeric output.

    Example:
        >>> e = ferryml.explain("models:/churn@champion", {"age": 31, "plan": "pro"})
        >>> max(e.contributions, key=lambda c: abs(e.contributions[c]))
        'plan'
    """
    from ferryml.registry.api import load_model

    return explain_row(load_model(model_uri), row)


def explain_row(model: LoadedModel, row: Any) -> Explanation:
    """Explain the output ``model`` gives ``row`` (checked against its signature, as for a
    prediction). Raises as ``explain`` does."""
    shap = _shap()
    frame = _one_row(model, row)
    background, source = _background(model)
    score, explains = _scorer(model, frame)
    columns = list(frame.columns)
    samples = _samples(len(columns))
    rows = MAX_CELLS // (samples * len(columns))
    if rows < 1:
        raise Conflict(
            f"Model {model.uri} has {len(columns)} input columns: too many to explain within "
            f"the bound of {MAX_CELLS} scored values."
        )
    background = background.head(rows)
    dtypes = background.dtypes.to_dict()
    numeric = all(dtype.kind in "biuf" for dtype in dtypes.values())

    def values(data: pd.DataFrame) -> np.ndarray:
        return data.to_numpy(dtype=np.float64 if numeric else object)

    def scored(data: np.ndarray) -> np.ndarray:
        return score(pd.DataFrame(data, columns=columns).astype(dtypes))

    with _repeatable():
        try:
            explainer = shap.KernelExplainer(scored, values(background))
            phi = explainer.shap_values(values(frame), nsamples=samples, l1_reg=False, silent=True)
        except FerryError:
            raise
        except Exception as e:  # noqa: BLE001 - what SHAP cannot do with this row is told
            raise InvalidArgument(f"This row could not be explained: {e}") from e
    output = float(score(frame)[0])
    return Explanation(
        output=output,
        base_value=float(np.ravel(explainer.expected_value)[0]),
        contributions={c: float(v) for c, v in zip(columns, np.ravel(phi), strict=True)},
        explains=explains,
        background=source,
        background_rows=len(background),
    )


def _shap() -> Any:
    try:
        if "shap" in sys.modules:
            import shap  # imported already (or being imported: this waits for it)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its import trips matplotlib's deprecations
                import shap
    except ImportError as e:
        raise MissingExtra(
            "Explanations need SHAP, which is not installed: pip install 'ferryml[shap]'."
        ) from e
    return shap


def _one_row(model: LoadedModel, row: Any) -> pd.DataFrame:
    if isinstance(row, pd.Series):
        row = row.to_dict()  # one value per column, each keeping its own type
    frame = as_frame(row, model.signature.columns if model.signature else None)
    if len(frame) != 1:
        raise InvalidArgument(
            f"An explanation is of one row; {len(frame)} rows were given. Explain them one "
            "at a time."
        )
    prepared: pd.DataFrame = model.prepare(frame)
    return prepared.reset_index(drop=True)


def _background(model: LoadedModel) -> tuple[pd.DataFrame, str]:
    if model.background is not None:
        frame, source = pd.read_parquet(io.BytesIO(model.background)), "training data"
    elif model.metadata.input_example:
        frame, source = pd.DataFrame(model.metadata.input_example), "input example"
    else:
        raise Conflict(
            f"Model {model.uri} has no rows to compare a row against, so it cannot be "
            "explained. Log it with ferryml.log_model(model, training_data=X), which keeps "
            "a sample of X, or at least with input_example=."
        )
    prepared: pd.DataFrame = model.prepare(frame)
    return prepared.reset_index(drop=True), source


def _scorer(model: LoadedModel, row: pd.DataFrame) -> tuple[Scorer, str]:
    """What is explained: a classifier's probability of the positive class (two classes)
    or of the class it predicts for ``row`` (more); otherwise the numeric prediction."""
    raw: Any = model.raw
    if model.has_proba:
        first = _call(raw.predict_proba, row)
        if first.ndim == 2 and first.shape[1] >= 2:
            binary = first.shape[1] == 2
            index = 1 if binary else int(np.argmax(first[0]))
            classes = getattr(raw, "classes_", None)
            label = classes[index] if classes is not None else index
            label = label.item() if isinstance(label, np.generic) else label
            which = "the positive class" if binary else "the predicted class"
            return (
                lambda data: _call(raw.predict_proba, data)[:, index],
                f"probability of class {label} ({which})",
            )
    first = _call(raw.predict, row)
    if first.dtype.kind not in "biuf" or first.size != 1:
        raise Conflict(
            f"Model {model.uri} predicts {first.ravel()[:3].tolist()!r} for one row: an "
            "explanation needs one number per row (or probabilities, with predict_proba)."
        )
    return lambda data: _call(raw.predict, data).reshape(len(data)), "prediction"


def _call(method: Callable[[pd.DataFrame], Any], data: pd.DataFrame) -> np.ndarray:
    try:
        out = np.asarray(method(data))
    except FerryError:
        raise
    except Exception as e:  # noqa: BLE001 - the model refused this input: a client error
        raise InvalidArgument(f"The model could not score this input: {e}") from e
    return out.astype(np.float64) if out.dtype.kind in "biu" else out


def _samples(features: int) -> int:
    """Coalitions to score: all of them for a few features, else SHAP's default budget."""
    if features <= EXACT_FEATURES:
        return max(1, 2**features - 2)
    return 2 * features + 2**11


@contextmanager
def _repeatable() -> Iterator[None]:
    with _GLOBAL_RANDOM:
        state = np.random.get_state()
        np.random.seed(_SEED)
        try:
            yield
        finally:
            np.random.set_state(state)
