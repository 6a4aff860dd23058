"""Autologging for scikit-learn: ``ferryml.autolog()`` logs every ``fit`` without code.

Every scikit-learn estimator's ``fit`` (estimators, pipelines, searches, and classes a user
derives from ``BaseEstimator``, even ones defined later) is wrapped: the outermost fit logs
its params, training metrics (named as MLflow's sklearn autolog names them), the fitted
model with its signature and input example, and a digest of its training data as the run's
input. A fit inside an active run logs there; otherwise a run is started around it and ended
(FAILED when the fit raises). Fits nested in that fit (a pipeline's steps, a search's
candidates) log nothing. Logging never breaks a fit: a failure is warned about once.

Example:
    >>> ferryml.autolog()
    >>> LogisticRegression().fit(X, y)  # a run with params, metrics, model and input
    >>> ferryml.autolog(disable=True)  # every patched ``fit`` is restored
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["autolog"]

_log = logging.getLogger(__name__)
_ORIGINAL = "_ferryml_autolog_original"
_HASH_LIMIT = 64 << 20  # bytes of training data hashed in full; above it, head and tail


@dataclass(frozen=True)
class _Config:
    log_models: bool = True
    log_input: bool = True
    log_input_example: bool = True
    log_training_metrics: bool = True
    log_post_training_metrics: bool = False  # accepted for MLflow's signature; not built
    registered_model_name: str | None = None
    silent: bool = False


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config: _Config | None = None  # None: disabled
        self.patched: list[type] = []
        self.own_init_subclass: Any = None
        self.hooked = False
        self.warned = False


_state = _State()
# Autologged fits in progress, in any thread: the fits nested in one log nothing, also
# those scikit-learn runs on worker threads (a forest's trees, a search's candidates), which
# a context variable would not reach. A fit another thread starts meanwhile is not logged.
_fitting = 0
_fitting_lock = threading.Lock()
# The estimator whose fit is being logged, in this thread: XGBoost's and LightGBM's train,
# called by their wrappers' fit, then logs into that fit's run (_autolog_boosting.py).
_outer_fit: ContextVar[Any] = ContextVar("ferryml_autolog_fit", default=None)


def autolog(
    disable: bool = False,
    *,
    log_models: bool = True,
    log_input: bool = True,
    log_input_examples: bool = True,
    log_training_metrics: bool = True,
    log_post_training_metrics: bool = False,
    registered_model_name: str | None = None,
    silent: bool = False,
) -> None:
    """Log every scikit-learn ``fit`` of this process (``disable=True`` undoes it).

    Logged for the outermost fit: every param (``get_params(deep=True)``), training metrics
    (``training_score``; classifiers' ``training_accuracy_score``, ``..._precision_score``,
    ``..._recall_score``, ``..._f1_score``, ``training_log_loss``, ``training_roc_auc``;
    regressors' ``training_mean_squared_error``, ``..._root_mean_squared_error``,
    ``..._mean_absolute_error``, ``training_r2_score``), the model as ``model`` with its
    signature and five rows as input example, and the training data's digest as input
    ``dataset``. Searches also log ``best_<param>`` params, ``best_cv_score`` and the best
    estimator as ``best_estimator``. ``registered_model_name`` registers each logged model.
    XGBoost's and LightGBM's ``train`` and wrappers also log each round's eval metrics, early
    stopping and feature importances (``_autolog_boosting.py``); neither is imported here.
    """
    from sklearn.base import BaseEstimator

    from ferryml.tracking import _autolog_boosting as boosting

    with _state.lock:
        _unpatch(BaseEstimator)
        boosting.unpatch()
        if disable:
            _state.config = None
            return
        _state.config = _Config(
            log_models=log_models,
            log_input=log_input,
            log_input_example=log_input_examples,
            log_training_metrics=log_training_metrics,
            log_post_training_metrics=log_post_training_metrics,
            registered_model_name=registered_model_name,
            silent=silent,
        )
        _state.warned = False
        _patch(BaseEstimator)
        boosting.patch()


# -- patching ----------------------------------------------------------------------------


def _patch(base: type) -> None:
    """Wrap ``fit`` of every class defining one, now and (through ``__init_subclass__``)
    of every estimator class defined later."""
    seen: set[type] = set()
    todo = [base]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        _patch_class(cls)
        todo.extend(cls.__subclasses__())
    _state.own_init_subclass = base.__dict__.get("__init_subclass__")
    own = _state.own_init_subclass

    def hook(cls: type, **kwargs: Any) -> None:
        if own is not None:
            own.__get__(None, cls)(**kwargs)
        else:
            super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
        if _state.config is not None:
            _patch_class(cls)

    base.__init_subclass__ = classmethod(hook)  # type: ignore[assignment,method-assign]
    _state.hooked = True


def _patch_class(cls: type) -> None:
    fit = cls.__dict__.get("fit")
    if not callable(fit) or hasattr(fit, _ORIGINAL) or isinstance(fit, (staticmethod, type)):
        return
    wrapped = _wrap(fit)
    setattr(wrapped, _ORIGINAL, fit)
    type.__setattr__(cls, "fit", wrapped)
    _state.patched.append(cls)


def _unpatch(base: type) -> None:
    for cls in _state.patched:
        fit = cls.__dict__.get("fit")
        if fit is not None and hasattr(fit, _ORIGINAL):
            type.__setattr__(cls, "fit", getattr(fit, _ORIGINAL))
    _state.patched.clear()
    if _state.hooked:
        if _state.own_init_subclass is not None:
            base.__init_subclass__ = _state.own_init_subclass  # type: ignore[method-assign]
        else:
            delattr(base, "__init_subclass__")
    _state.own_init_subclass = None
    _state.hooked = False


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    # The wrapper names nothing but ``_fit``: cloudpickle, which copies the methods of a
    # class defined in a notebook (loky, Dask), then refers to this module, not its locks.
    @functools.wraps(original)  # keeps the signature scikit-learn's metadata routing reads
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _fit(original, self, args, kwargs)

    return fit


def _fit(original: Callable[..., Any], estimator: Any, args: Any, kwargs: Any) -> Any:
    global _fitting
    config = _state.config
    with _fitting_lock:
        outermost = config is not None and _fitting == 0
        if outermost:
            _fitting += 1
    if not outermost or config is None:
        return original(estimator, *args, **kwargs)
    token = _outer_fit.set(estimator)
    try:
        return _autologged_fit(config, original, estimator, args, kwargs)
    finally:
        _outer_fit.reset(token)
        with _fitting_lock:
            _fitting -= 1


# -- one fit -----------------------------------------------------------------------------


def _autologged_fit(
    config: _Config,
    original: Callable[..., Any],
    estimator: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    from ferryml.store.entities import RunStatus
    from ferryml.tracking import fluent
    from ferryml.tracking._autolog_boosting import flavor

    started = False
    run_id: str | None = None
    try:
        active = fluent.active_run()
        if active is None:
            active = fluent.start_run(tags={"ferryml.autolog": flavor(estimator)})
            started = True
        run_id = active.run_id
        _log_params(run_id, estimator)
    except Exception as e:  # noqa: BLE001 - autolog never breaks a fit
        _warn(config, e)
    try:
        result = original(estimator, *args, **kwargs)
    except BaseException as e:
        if started:
            status = RunStatus.KILLED if isinstance(e, KeyboardInterrupt) else RunStatus.FAILED
            failure = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            _end(config, status, failure[-8000:])
        raise
    if run_id is not None:
        try:
            _log_fitted(config, run_id, estimator, args, kwargs)
        except Exception as e:  # noqa: BLE001 - autolog never breaks a fit
            _warn(config, e)
    if started:
        _end(config, RunStatus.FINISHED, None)
    return result


def _end(config: _Config, status: Any, failure: str | None) -> None:
    from ferryml.tracking import fluent

    try:
        fluent.end_run(status, failure=failure)
    except Exception as e:  # noqa: BLE001 - autolog never breaks a fit
        _warn(config, e)


def _warn(config: _Config, error: Exception) -> None:
    """Warn once per ``autolog()`` call; later failures go to the debug log only."""
    _log.debug("ferryml.autolog could not log a fit", exc_info=error)
    if _state.warned or config.silent:
        return
    _state.warned = True
    # A log line, not a warning: code run with warnings as errors would have the fit fail.
    _log.warning(
        "ferryml.autolog could not log a fit (%s: %s); the fit's result stands. Further "
        "failures are not shown until autolog() is called again.",
        type(error).__name__,
        error,
    )


def _client() -> Any:
    from ferryml.tracking import fluent

    return fluent._fluent.get_client()


def _log_params(run_id: str, estimator: Any) -> None:
    from ferryml.tracking._validation import _KEY, MAX_KEY, MAX_PARAM_VALUE

    params = {
        key: str(value)[:MAX_PARAM_VALUE]
        for key, value in estimator.get_params(deep=True).items()
        if len(key) <= MAX_KEY and _KEY.fullmatch(key)
    }
    kind = type(estimator)
    tags = {
        "estimator_name": kind.__name__,
        "estimator_class": f"{kind.__module__}.{kind.__name__}",
    }
    _client().log_batch(run_id, params=params, tags=tags)


def _x_y(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    x = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return x, y


def _log_fitted(
    config: _Config,
    run_id: str,
    estimator: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Each part on its own: a model that cannot be scored is still logged."""
    x, y = _x_y(args, kwargs)
    client = _client()
    steps: list[Callable[[], None]] = []
    if config.log_training_metrics and x is not None:

        def log_metrics() -> None:
            from ferryml.store.entities import Metric

            metrics = _training_metrics(estimator, x, y, kwargs.get("sample_weight"))
            rows = [Metric(k, v, None, 0) for k, v in metrics.items()]  # type: ignore[arg-type]
            client.log_batch(run_id, metrics=rows)

        steps.append(log_metrics)
    if hasattr(estimator, "best_params_"):
        steps.append(lambda: _log_search(config, run_id, estimator, x))
    if config.log_input and x is not None:

        def log_input() -> None:
            digest = data_digest(x, y)
            client.log_input(run_id, "dataset", digest[:12], digest, "training")

        steps.append(log_input)
    if config.log_models:
        steps.append(lambda: _log_model(config, estimator, "model", x))
    for step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - autolog never breaks a fit
            _warn(config, e)


def _log_search(config: _Config, run_id: str, search: Any, x: Any) -> None:
    from ferryml.store.entities import Metric
    from ferryml.tracking._validation import _KEY, MAX_KEY, MAX_PARAM_VALUE

    params = {
        f"best_{k}": str(v)[:MAX_PARAM_VALUE]
        for k, v in search.best_params_.items()
        if len(k) < MAX_KEY - 5 and _KEY.fullmatch(k)
    }
    metrics = []
    if isinstance(getattr(search, "best_score_", None), (int, float)):  # np.float64 too
        metrics.append(Metric("best_cv_score", float(search.best_score_), None, 0))  # type: ignore[arg-type]
    _client().log_batch(run_id, params=params, metrics=metrics)
    if config.log_models and getattr(search, "best_estimator_", None) is not None:
        _log_model(config, search.best_estimator_, "best_estimator", x, register=False)


def _log_model(config: _Config, model: Any, name: str, x: Any, register: bool = True) -> None:
    from ferryml.registry.api import log_model

    example = _head(x) if config.log_input_example and x is not None else None
    log_model(
        model,
        name,
        input_example=example,
        registered_model_name=config.registered_model_name if register else None,
    )


def _head(x: Any, rows: int = 5) -> Any:
    if hasattr(x, "iloc"):
        return x.iloc[:rows]
    if hasattr(x, "toarray"):  # a sparse matrix: the example is dense
        return x[:rows].toarray()
    return x[:rows]


# -- metrics and digest ------------------------------------------------------------------


def _training_metrics(estimator: Any, x: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    """The metrics MLflow's sklearn autolog logs, from one ``predict`` (and one
    ``predict_proba``) on the training data; each one that cannot be computed is left out."""
    from sklearn import base, metrics

    out: dict[str, float] = {}

    def put(name: str, compute: Callable[[], Any]) -> None:
        try:
            out[name] = float(compute())
        except Exception as e:  # noqa: BLE001 - e.g. roc_auc with one class present
            _log.debug("autolog: %s not computed: %s", name, e)

    if y is None:
        if callable(getattr(estimator, "score", None)):
            put("training_score", lambda: estimator.score(x))
        return out
    sw = sample_weight
    classifier, regressor = base.is_classifier(estimator), base.is_regressor(estimator)
    if not (classifier or regressor) or not callable(getattr(estimator, "predict", None)):
        if callable(getattr(estimator, "score", None)):
            put("training_score", lambda: estimator.score(x, y))
        return out
    predicted = estimator.predict(x)
    if classifier:
        put(
            "training_accuracy_score",
            lambda: metrics.accuracy_score(y, predicted, sample_weight=sw),
        )
        try:
            p, r, f, _ = metrics.precision_recall_fscore_support(
                y, predicted, average="weighted", sample_weight=sw, zero_division=0
            )
            out.update(
                training_precision_score=float(p),
                training_recall_score=float(r),
                training_f1_score=float(f),
            )
        except Exception as e:  # noqa: BLE001 - autolog never breaks a fit
            _log.debug("autolog: precision/recall/f1 not computed: %s", e)
        if callable(getattr(estimator, "predict_proba", None)):
            try:
                proba = estimator.predict_proba(x)
            except Exception as e:  # noqa: BLE001 - e.g. SVC without probability=True
                _log.debug("autolog: predict_proba failed: %s", e)
            else:
                labels = getattr(estimator, "classes_", None)
                put(
                    "training_log_loss",
                    lambda: metrics.log_loss(y, proba, sample_weight=sw, labels=labels),
                )
                if proba.shape[1] == 2:
                    put(
                        "training_roc_auc",
                        lambda: metrics.roc_auc_score(y, proba[:, 1], sample_weight=sw),
                    )
                else:
                    put(
                        "training_roc_auc",
                        lambda: metrics.roc_auc_score(
                            y, proba, multi_class="ovr", sample_weight=sw, labels=labels
                        ),
                    )
    else:
        mse = metrics.mean_squared_error(y, predicted, sample_weight=sw)
        out["training_mean_squared_error"] = float(mse)
        out["training_root_mean_squared_error"] = float(mse) ** 0.5
        put(
            "training_mean_absolute_error",
            lambda: metrics.mean_absolute_error(y, predicted, sample_weight=sw),
        )
        put("training_r2_score", lambda: metrics.r2_score(y, predicted, sample_weight=sw))
    # The mixins' own score is accuracy or R²: computed above, not predicted again.
    mixin, same = (
        (base.ClassifierMixin, "training_accuracy_score")
        if classifier
        else (base.RegressorMixin, "training_r2_score")
    )
    if type(estimator).score is mixin.score and same in out:
        out["training_score"] = out[same]
    else:
        put(
            "training_score",
            lambda: (
                estimator.score(x, y, sample_weight=sw) if sw is not None else estimator.score(x, y)
            ),
        )
    return out


def data_digest(x: Any, y: Any = None) -> str:
    """A SHA-256 of the training data's shape, columns and values (in full up to 64 MiB in
    all; past that, each array's first and last rows), without copying it into the store."""
    import numpy as np

    h = hashlib.sha256()
    budget = [_HASH_LIMIT]  # bytes left to hash in full, across every column
    for part in (x, y):
        if part is None:
            h.update(b"none")
            continue
        if hasattr(part, "columns"):
            h.update(repr([(str(c), str(t)) for c, t in part.dtypes.items()]).encode())
        if hasattr(part, "indptr"):  # sparse, CSR or CSC: its three arrays, not a copy
            arrays = [part.data, part.indices, part.indptr]
        elif hasattr(part, "row"):  # sparse, COO
            arrays = [part.data, part.row, part.col]
        elif hasattr(part, "toarray"):  # other sparse formats
            csr = part.tocsr()
            arrays = [csr.data, csr.indices, csr.indptr]
        elif hasattr(part, "columns"):  # column by column: a mixed frame is not copied whole
            arrays = [part[c].to_numpy() for c in part.columns]
        else:
            arrays = [np.asarray(part.to_numpy() if hasattr(part, "to_numpy") else part)]
        for array in arrays:
            h.update(repr((array.shape, str(array.dtype))).encode())
            if array.ndim == 0:
                _update(h, array)
                continue
            row = max(1, array.nbytes // max(1, len(array)) if array.dtype != object else 8)
            if len(array) * row <= budget[0] or len(array) < 2:
                budget[0] -= len(array) * row
                _update(h, _hashable(array))
            else:  # its ends, in what is left of the budget (a row each at least)
                rows = max(1, max(budget[0], 0) // 2 // row)
                budget[0] -= 2 * rows * row
                _update(h, _hashable(array[:rows]))
                _update(h, _hashable(array[-rows:]))
    return h.hexdigest()


def _hashable(array: Any) -> Any:
    """Object values (strings, mixed) as one 64-bit hash each, computed by pandas without a
    Python object per value; other arrays as they are."""
    if array.dtype != object:
        return array
    from pandas.util import hash_array

    try:
        return hash_array(array.ravel())
    except TypeError:  # values pandas cannot hash (lists, dicts): their text, bounded
        return repr(array.ravel()[:10_000].tolist()).encode()


def _update(h: Any, array: Any) -> None:
    import numpy as np

    if isinstance(array, bytes):
        h.update(array)
        return
    array = np.ascontiguousarray(array)
    try:
        h.update(memoryview(array).cast("B"))  # no copy
    except (TypeError, ValueError):  # dtypes a buffer cannot carry, e.g. datetime64
        h.update(array.tobytes())
