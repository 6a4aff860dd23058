"""Autologging for XGBoost and LightGBM: their native ``train``, also when their scikit-learn
wrappers (``XGBClassifier``, ``LGBMClassifier``, …) call it.

``train`` is replaced in the modules that hold it (``xgboost``, ``xgboost.training``,
``xgboost.sklearn``; ``lightgbm``, ``lightgbm.engine``, ``lightgbm.sklearn``). A library not
imported yet is not imported by ``autolog()`` (it costs about a second): a finder on
``sys.meta_path`` patches it right after its first import, and is gone once both are.

A ``train`` the user calls logs, in the active run or a run of its own, its params (the
booster params and ``train``'s other arguments), each eval set's metrics per iteration
(``validation_0-logloss``, ``valid_0-binary_logloss``: MLflow's names), ``best_iteration``,
``stopped_iteration`` and the best iteration's metrics one step past the last when training
could stop early (both counted as the booster counts its rounds: a resumed training's from
its model's first), feature importances as ``feature_importance_<type>.json``, and the Booster
as ``model``. Called by a wrapper's autologged ``fit`` (the fit is the run's, see
``autolog.py``), it adds the metrics, early stopping figures and importances to that fit's
run; the fit logs the params and the wrapper as the model. Called from any other fit (a
search's candidates, a wrapper in an ensemble) it logs nothing.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import logging
import numbers
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ferryml.tracking import autolog as _sk

__all__: list[str] = []

_log = logging.getLogger("ferryml.tracking.autolog")  # one logger for every integration
_EXAMPLE_ROWS = 5


class _Library:
    """What differs between XGBoost and LightGBM."""

    name: str
    home: str  # the module defining ``train``
    wrapper: str  # the base class of the scikit-learn wrappers, in ``<name>.sklearn``
    unlogged: frozenset[str]  # ``train`` arguments that are data or code, not params

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.name, self.home, f"{self.name}.sklearn")

    def callback(self, series: _Series) -> Any:
        raise NotImplementedError

    def early_stopping(self, booster: Any, arguments: dict[str, Any], series: _Series) -> Any:
        """(best_iteration, stopped_iteration, index of the best step) or None."""
        raise NotImplementedError

    def importances(self, booster: Any) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def example(self, train_set: Any) -> Any:
        raise NotImplementedError


class _XGBoost(_Library):
    name = "xgboost"
    home = "xgboost.training"
    wrapper = "XGBModel"
    unlogged = frozenset((
        "params", "dtrain", "evals", "obj", "feval", "evals_result", "xgb_model", "callbacks",
        "learning_rates", "custom_metric",
    ))  # fmt: skip

    def callback(self, series: _Series) -> Any:
        from xgboost.callback import TrainingCallback

        class Recorder(TrainingCallback):
            def before_training(self, model: Any) -> Any:
                try:  # a resumed model's rounds: early stopping counts from its first
                    series.start = int(model.num_boosted_rounds())
                except Exception as e:  # noqa: BLE001 - autolog never breaks a training
                    _log.debug("autolog: rounds before training unknown: %s", e)
                return model

            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                series.record(
                    epoch,
                    lambda: {
                        f"{data}-{metric}": values[-1]
                        for data, metrics in evals_log.items()
                        for metric, values in metrics.items()
                    },
                )
                return False  # never stops the training

        return Recorder()

    def early_stopping(self, booster: Any, arguments: dict[str, Any], series: _Series) -> Any:
        from xgboost.callback import EarlyStopping

        callbacks = arguments.get("callbacks") or []
        if not arguments.get("early_stopping_rounds") and not any(
            isinstance(c, EarlyStopping) for c in callbacks
        ):
            return None
        best = int(booster.best_iteration)  # counted from 0, as MLflow logs it
        return best, series.start + len(series.results) - 1, best - series.start

    def importances(self, booster: Any) -> dict[str, dict[str, Any]]:
        out = {}
        for kind in ("weight", "gain"):  # MLflow logs weight; gain is the one users read
            try:
                out[kind] = booster.get_score(importance_type=kind)
            except Exception as e:  # noqa: BLE001 - e.g. gblinear has no tree importances
                _log.debug("autolog: no %s importance: %s", kind, e)
        return out

    def example(self, train_set: Any) -> Any:
        """The first rows of a DMatrix, missing values as NaN (XGBoost keeps no copy of the
        data it was given, only its own sparse form)."""
        import numpy as np

        rows = train_set.slice(list(range(min(_EXAMPLE_ROWS, train_set.num_row()))))
        sparse = rows.get_data().tocoo()
        dense = np.full(sparse.shape, np.nan)
        dense[sparse.row, sparse.col] = sparse.data
        names = train_set.feature_names
        if names:
            import pandas as pd

            return pd.DataFrame(dense, columns=list(names))
        return dense


class _LightGBM(_Library):
    name = "lightgbm"
    home = "lightgbm.engine"
    wrapper = "LGBMModel"
    unlogged = frozenset((
        "params", "train_set", "valid_sets", "valid_names", "fobj", "feval", "init_model",
        "learning_rates", "callbacks",
    ))  # fmt: skip

    def callback(self, series: _Series) -> Any:
        return _LightGBMRecorder(series)

    def early_stopping(self, booster: Any, arguments: dict[str, Any], series: _Series) -> Any:
        best = int(booster.best_iteration)  # counted from 1; 0 without early stopping
        if best <= 0:
            return None
        return best, series.start + len(series.results), best - 1 - series.start

    def importances(self, booster: Any) -> dict[str, dict[str, Any]]:
        names = booster.feature_name()
        return {
            kind: dict(
                zip(names, booster.feature_importance(importance_type=kind).tolist(), strict=True)
            )
            for kind in ("split", "gain")
        }

    def example(self, train_set: Any) -> Any:
        """A copy of the first rows, read before training: LightGBM frees the data once it
        has built the Dataset (``free_raw_data``), and a slice would keep it alive."""
        data = train_set.data
        if data is None or isinstance(data, (str, bytes, os.PathLike)):
            return None
        head = _sk._head(data, _EXAMPLE_ROWS)
        if hasattr(head, "to_pandas"):  # a pyarrow Table
            head = head.to_pandas()
        return head.copy()  # numpy and pandas: a deep copy, also under copy-on-write


class _LightGBMRecorder:
    def __init__(self, series: _Series) -> None:
        self.series = series
        # set on the object: LightGBM gives a callback without its own order a negative one
        self.order = 20  # before early stopping (30), which ends training by raising
        self.before_iteration = False

    def __call__(self, env: Any) -> None:
        self.series.start = env.begin_iteration  # an init_model's rounds
        self.series.record(
            env.iteration,
            lambda: {f"{d}-{m}": value for d, m, value, *_ in env.evaluation_result_list},
        )


_LIBRARIES: dict[str, _Library] = {"xgboost": _XGBoost(), "lightgbm": _LightGBM()}


# -- patching ----------------------------------------------------------------------------


class _Patches:
    def __init__(self) -> None:
        self.done: list[tuple[ModuleType, Any, Any]] = []  # (module, original, ours)
        self.finder: _ImportHook | None = None


_patches = _Patches()


def patch() -> None:
    """Patch the libraries imported already; watch for the others. The caller holds
    autolog's lock."""
    waiting = set()
    for name, library in _LIBRARIES.items():
        if name in sys.modules:
            _patch_library(library)
        else:
            waiting.add(name)
    if waiting:
        _patches.finder = _ImportHook(waiting)
        sys.meta_path.insert(0, _patches.finder)


def unpatch() -> None:
    """Put every original ``train`` back and stop watching imports."""
    for module, original, wrapped in reversed(_patches.done):
        if getattr(module, "train", None) is wrapped:  # not another autolog's put around it
            module.train = original
    _patches.done.clear()
    _remove_finder()


def _remove_finder() -> None:
    if _patches.finder is not None and _patches.finder in sys.meta_path:
        sys.meta_path.remove(_patches.finder)
    _patches.finder = None


def _patch_library(library: _Library) -> None:
    home = sys.modules.get(library.home)
    original = getattr(home, "train", None)
    if original is None or hasattr(original, _sk._ORIGINAL):
        return  # not (yet) whole, or patched already
    wrapped = _wrap(library, original)
    for name in library.modules:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "train", None) is original:
            module.train = wrapped  # type: ignore[attr-defined]
            _patches.done.append((module, original, wrapped))


def _patch_after_import(name: str) -> None:
    with _sk._state.lock:
        finder = _patches.finder
        if finder is None or _sk._state.config is None:
            return
        finder.waiting.discard(name)
        if not finder.waiting:
            _remove_finder()
        _patch_library(_LIBRARIES[name])


class _ImportHook(importlib.abc.MetaPathFinder):
    """Lets the other finders find xgboost or lightgbm, and patches it once it has run.

    Every other import costs one set lookup."""

    def __init__(self, waiting: set[str]) -> None:
        self.waiting = waiting

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        # Another import hook (MLflow's) asks every finder again from inside its find_spec
        # and puts its loader around the one it gets back: ours when this was asked again,
        # not to be wrapped twice. Ours inside, the library is patched before the other
        # hook's code runs, which then wraps ferryml's train: both log.
        if _wraps_ours(spec.loader):
            return spec
        if hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, fullname)
        elif hasattr(spec.loader, "load_module"):  # MLflow's hooks wrap loaders in one
            spec.loader = _LegacyPatchingLoader(spec.loader, fullname)
        return spec


def _wraps_ours(loader: Any) -> bool:
    for _ in range(8):  # loaders around loaders, each its ``loader``, as MLflow's and ours
        if isinstance(loader, _LegacyPatchingLoader):
            return True
        loader = getattr(loader, "loader", None)
    return False


class _LegacyPatchingLoader(importlib.abc.Loader):
    """Runs the loader found, then patches. Without ``exec_module`` the import system
    calls ``load_module``, as MLflow's import hooks do on the loader they wrap."""

    def __init__(self, loader: Any, name: str) -> None:
        self.loader, self.name = loader, name

    def load_module(self, fullname: str) -> ModuleType:
        # the loader's own: importlib.abc.Loader's makes a spec without the package's
        # search path, and the library's relative imports fail
        module: ModuleType = self.loader.load_module(fullname)
        self.patch()
        return module

    def patch(self) -> None:
        try:
            _patch_after_import(self.name)
        except Exception as e:  # noqa: BLE001 - an import never fails because of autolog
            _log.warning("ferryml.autolog could not patch %s: %s", self.name, e)


class _PatchingLoader(_LegacyPatchingLoader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # the module keeps its own loader (resources, reloads): this one only runs it
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.patch()


def _wrap(library: _Library, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        return _train(library, original, args, kwargs)

    setattr(train, _sk._ORIGINAL, original)
    return train


# -- one train ---------------------------------------------------------------------------


def _train(
    library: _Library, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    config = _sk._state.config
    if config is None:
        return original(*args, **kwargs)
    with _sk._fitting_lock:
        outermost = _sk._fitting == 0
        _sk._fitting += 1
    try:
        if outermost:
            return _logged_train(config, library, original, args, kwargs, own=True)
        if _wrapper_fit(library, _sk._outer_fit.get()):
            return _logged_train(config, library, original, args, kwargs, own=False)
        return original(*args, **kwargs)
    finally:
        with _sk._fitting_lock:
            _sk._fitting -= 1


def _wrapper_fit(library: _Library, outer: Any) -> bool:
    """Is the fit being logged this library's wrapper, alone or ending a pipeline?"""
    steps = getattr(outer, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        outer = steps[-1][-1]
    return _is_wrapper(library, outer)


def _is_wrapper(library: _Library, estimator: Any) -> bool:
    wrapper = getattr(sys.modules.get(f"{library.name}.sklearn"), library.wrapper, None)
    return wrapper is not None and isinstance(estimator, wrapper)


def flavor(estimator: Any) -> str:
    """The ``ferryml.autolog`` tag of a run ``estimator.fit`` starts: ``xgboost`` or
    ``lightgbm`` for their wrappers, else ``sklearn``."""
    return next((n for n, lib in _LIBRARIES.items() if _is_wrapper(lib, estimator)), "sklearn")


def _logged_train(
    config: Any,
    library: _Library,
    original: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    own: bool,
) -> Any:
    """``own``: a train the user called (params, model; a run if none is active); else one
    inside a wrapper's logged fit, whose run gets the metrics alone."""
    from ferryml.store.entities import RunStatus
    from ferryml.tracking import fluent

    try:
        arguments = _arguments(original, args, kwargs)
    except TypeError as e:
        trained = original(*args, **kwargs)  # the library's own error, if it has one
        _sk._warn(config, e)  # a call it takes and autolog cannot read: not logged
        return trained
    call_args, call_kwargs = args, kwargs
    started, series, example = False, None, None
    try:
        active = fluent.active_run()
        if active is None and own:
            active = fluent.start_run(tags={"ferryml.autolog": library.name})
            started = True
        if active is not None:
            series = _Series(config, active.run_id)
            # a new list (it may be the user's), ours first: XGBoost calls no callback
            # after one that asks to stop, and the last round's metrics would be lost
            callbacks = [library.callback(series), *(arguments.get("callbacks") or [])]
            call_args, call_kwargs = _with_callbacks(original, args, kwargs, callbacks)
    except Exception as e:  # noqa: BLE001 - autolog never breaks a training
        _sk._warn(config, e)
        call_args, call_kwargs, series = args, kwargs, None
    if own and series is not None:
        try:
            _log_params(library, series.run_id, arguments)
        except Exception as e:  # noqa: BLE001 - e.g. a param logged before with another value
            _sk._warn(config, e)
    if own and series is not None and config.log_models and config.log_input_example:
        example = _example(library, arguments)
    try:
        booster = original(*call_args, **call_kwargs)
    except BaseException as e:
        if started:
            status = RunStatus.KILLED if isinstance(e, KeyboardInterrupt) else RunStatus.FAILED
            failure = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            _sk._end(config, status, failure[-8000:])
        raise
    if series is not None:
        _log_trained(config, library, series, booster, arguments, example, own)
    if started:
        _sk._end(config, RunStatus.FINISHED, None)
    return booster


def _arguments(original: Callable[..., Any], args: Any, kwargs: Any) -> dict[str, Any]:
    """Every argument of the call by name, defaults included; TypeError if ``train`` would
    not take it."""
    bound = _signature(original, args).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments


def _signature(original: Callable[..., Any], args: Any) -> inspect.Signature:
    """``train``'s signature as it reads ``args``: XGBoost's takes its keyword-only
    arguments positionally too, in their order (with a warning), as its tutorial passes
    ``evals``."""
    signature = inspect.signature(original)
    params = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(args) <= sum(p.kind in positional for p in params) or any(
        p.kind is p.VAR_POSITIONAL for p in params
    ):
        return signature
    try:
        return signature.replace(
            parameters=[
                p.replace(kind=p.POSITIONAL_OR_KEYWORD) if p.kind is p.KEYWORD_ONLY else p
                for p in params
            ]
        )
    except ValueError:  # a keyword-only argument without a default: none to take
        return signature


def _with_callbacks(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], callbacks: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call as made, ``callbacks`` replaced where it was given (the library warns as
    it would have)."""
    position = list(_signature(original, args).parameters).index("callbacks")
    if position < len(args):
        return (*args[:position], callbacks, *args[position + 1 :]), kwargs
    return args, {**kwargs, "callbacks": callbacks}


def _example(library: _Library, arguments: dict[str, Any]) -> Any:
    train_set = arguments.get("dtrain", arguments.get("train_set"))
    try:
        return library.example(train_set)
    except Exception as e:  # noqa: BLE001 - the model is logged without one
        _log.debug("autolog: no input example from %r: %s", type(train_set).__name__, e)
        return None


def _log_params(library: _Library, run_id: str, arguments: dict[str, Any]) -> None:
    from ferryml.tracking._validation import _KEY, MAX_KEY, MAX_PARAM_VALUE

    booster_params = arguments.get("params") or {}
    if not isinstance(booster_params, dict):  # XGBoost's list of pairs: a key may repeat
        pairs: dict[str, list[Any]] = {}
        for key, value in booster_params:
            pairs.setdefault(key, []).append(value)
        booster_params = {k: v[0] if len(v) == 1 else v for k, v in pairs.items()}
    others = {k: v for k, v in arguments.items() if k not in library.unlogged}
    params = {
        key: str(value)[:MAX_PARAM_VALUE]
        for key, value in {**booster_params, **others}.items()
        if isinstance(key, str) and len(key) <= MAX_KEY and _KEY.fullmatch(key)
    }
    _sk._client().log_batch(run_id, params=params)


def _log_trained(
    config: Any,
    library: _Library,
    series: _Series,
    booster: Any,
    arguments: dict[str, Any],
    example: Any,
    own: bool,
) -> None:
    """Each part on its own, as for a scikit-learn fit."""
    client = _sk._client()
    run_id = series.run_id

    def log_early_stopping() -> None:
        from ferryml.store.entities import Metric

        stopping = library.early_stopping(booster, arguments, series)
        if stopping is None:
            return
        best, stopped, index = stopping
        now, after = int(time.time() * 1000), series.last_step + 1
        rows = [
            Metric("stopped_iteration", stopped, now, 0),
            Metric("best_iteration", best, now, 0),
        ]
        if 0 <= index < len(series.results):  # the best round's metrics, one step past
            rows += [Metric(k, v, now, after) for k, v in series.results[index].items()]
        client.log_batch(run_id, metrics=rows)

    def log_importances() -> None:
        for kind, values in library.importances(booster).items():
            client.log_dict(run_id, values, f"feature_importance_{kind}.json")

    steps: list[Callable[[], None]] = [log_early_stopping, log_importances]
    if own and config.log_models:
        steps.append(lambda: _sk._log_model(config, booster, "model", example))
    for step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - autolog never breaks a training
            _sk._warn(config, e)


class _Series:
    """Each iteration's eval metrics, logged as they come (a batch costs microseconds)."""

    def __init__(self, config: Any, run_id: str) -> None:
        self.config, self.run_id = config, run_id
        self.results: list[dict[str, float]] = []
        self.start = 0  # the model's rounds before this training (a resumed one's)
        self.last_step = -1
        self.broken = False

    def record(self, step: int, read: Callable[[], dict[str, Any]]) -> None:
        """``read`` gives the round's values; it runs here, where a failure is caught."""
        from ferryml.store.entities import Metric

        try:
            metrics = {_metric_key(k): float(v) for k, v in read().items() if _is_number(v)}
            self.results.append(metrics)
            self.last_step = step
            if self.broken:
                return
            now = int(time.time() * 1000)
            rows = [Metric(k, v, now, step) for k, v in metrics.items()]
            _sk._client().log_batch(self.run_id, metrics=rows)
        except Exception as e:  # noqa: BLE001 - autolog never breaks a training
            self.broken = True  # once: the store failing each round would slow training
            _sk._warn(self.config, e)


def _is_number(value: Any) -> bool:  # not a cross-validation's (mean, std)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@functools.lru_cache(maxsize=256)
def _metric_key(key: str) -> str:
    return key.replace("@", "_at_")  # ndcg@3, map@5: MLflow's spelling, '@' is no key
