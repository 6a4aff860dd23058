"""The model runtime: a served model resolved from the registry (following its alias) or
from an exported package, with input parsing that builds the model's input directly."""

from __future__ import annotations

import logging
import math
import pickle
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument
from ferryml.registry.package import LoadedModel
from ferryml.serving._frames import float_columns, float_frame

__all__ = [
    "Loaded",
    "ServedModel",
    "frame_from_columns",
    "frame_from_records",
    "to_jsonable",
]

log = logging.getLogger("ferryml.serving")
_FAST_FLAVORS = {"sklearn", "xgboost", "lightgbm"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # as the signature's check


@dataclass(frozen=True)
class Loaded:
    """One loaded version; swapped whole when the alias moves, so a request sees one."""

    name: str
    version: int
    model: LoadedModel
    columns: tuple[str, ...]
    numeric: bool  # every input is a number: the model may be given an array
    floats: bool = False  # every input is a float: a float64 frame needs no checks but one
    output: np.dtype[Any] = np.dtype(object)  # of ``predict``'s values, found at load
    classes: tuple[Any, ...] | None = None  # a classifier's, in predict_proba's column order
    memory: int = 0  # bytes the model holds (``model_bytes``)

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        if self.floats and self._plain(frame):
            # The common case: exactly the model's numeric columns, as float64. Nothing to
            # coerce; one range check on the array the model gets anyway (NaN fails it too).
            values = frame.to_numpy()
            if (np.abs(values) <= _FLOAT32_MAX).all():
                return self._run(values)
        prepared = self.model.prepare(frame)  # the signature's check, as in load_model
        try:
            if self.numeric and self.model.flavor in _FAST_FLAVORS:
                with warnings.catch_warnings():
                    # Fitted on a DataFrame, given the same columns as an array: fine.
                    warnings.simplefilter("ignore", UserWarning)
                    out = self.model.raw.predict(prepared.to_numpy(dtype=np.float64))
            else:
                out = self.model.raw.predict(prepared)
        except FerryError:
            raise
        except Exception as e:  # noqa: BLE001 - the model refused this input: a client error
            raise InvalidArgument(f"The model could not predict this input: {e}") from e
        return to_jsonable(out)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's probability of each class (``classes``), as an [n, k] float array.

        Raises:
            InvalidArgument: the model gives no probabilities, or refused this input.
        """
        if self.classes is None:
            raise InvalidArgument(
                f"Model {self.name!r} version {self.version} gives no probabilities "
                "(predict_proba); ask for its output 'predict'."
            )
        prepared = self.model.prepare(frame)
        try:
            return np.asarray(self.model.raw.predict_proba(prepared), dtype=np.float64)  # type: ignore[attr-defined]
        except FerryError:
            raise
        except Exception as e:  # noqa: BLE001 - the model refused this input: a client error
            raise InvalidArgument(f"The model could not predict this input: {e}") from e

    def _plain(self, frame: pd.DataFrame) -> bool:
        marked = float_columns(frame)
        if marked is not None:  # float_frame's: no look at each column's type
            return marked == self.columns
        return tuple(frame.columns) == self.columns and all(
            dtype == np.float64 for dtype in frame.dtypes
        )

    def _run(self, values: np.ndarray) -> list[Any]:
        try:
            if self.model.flavor in _FAST_FLAVORS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    return to_jsonable(self.model.raw.predict(values))
            frame = pd.DataFrame(values, columns=list(self.columns))
            return to_jsonable(self.model.raw.predict(frame))
        except FerryError:
            raise
        except Exception as e:  # noqa: BLE001 - the model refused this input: a client error
            raise InvalidArgument(f"The model could not predict this input: {e}") from e


def to_jsonable(values: Any) -> list[Any]:
    if isinstance(values, pd.DataFrame):
        values = values.to_numpy()
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            return [
                None if isinstance(v, float) and not math.isfinite(v) else v
                for v in values.tolist()
            ]
        return values.tolist()
    return list(values)


def frame_from_records(records: Any, columns: Sequence[str] | None) -> pd.DataFrame:
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, list) or not records:
        raise InvalidArgument("Send one record (an object) or a non-empty list of records.")
    if not all(isinstance(r, Mapping) for r in records):
        raise InvalidArgument("Every record must be an object of column: value.")
    if columns and all(len(r) == len(columns) for r in records):
        try:  # the common case: exactly the model's columns; build the frame directly
            rows = [[r[c] for c in columns] for r in records]
        except KeyError:
            return pd.DataFrame.from_records(records)
        if all(type(v) in (float, int) for row in rows for v in row):
            return float_frame(np.array(rows, dtype=np.float64), columns)
        return pd.DataFrame(rows, columns=list(columns))
    return pd.DataFrame.from_records(records)


def frame_from_columns(columns: Any) -> pd.DataFrame:
    if not isinstance(columns, Mapping) or not columns:
        raise InvalidArgument("'columns' must be an object of column: [values].")
    lengths = {len(v) if isinstance(v, list) else 1 for v in columns.values()}
    if len(lengths) != 1:
        raise InvalidArgument("Every column must have the same number of values.")
    return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in columns.items()})


class ServedModel:
    """A model served by name: ``NAME@ALIAS`` (reloaded in the background when the alias
    moves), ``NAME/VERSION``, or an exported package folder."""

    def __init__(
        self,
        settings: Settings,
        ref: str | None = None,
        *,
        package: str | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self.settings = settings
        self.ref = ref
        self.package = package
        self.poll_seconds = poll_seconds
        self.current: Loaded | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registry: Any = None
        self.on_switch: Callable[[Loaded, Loaded], None] | None = None

    @property
    def name(self) -> str:
        if self.current is not None:
            return self.current.name
        assert self.ref is not None
        return self.ref.split("@")[0].split("/")[0]

    def load(self) -> Loaded:
        """Load what the reference names now (the first time, or after a move)."""
        if self.package is not None:
            from ferryml.serving.packaging import load_exported

            model = load_exported(self.package, trust=self.settings.trust, root=self.settings.root)
            version = model.version
            name, number = (version.name, version.version) if version is not None else ("model", 0)
        else:
            from ferryml.registry.models import Registry

            if self._registry is None:  # kept open: following an alias polls it every few s
                self._registry = Registry(self.settings)
            assert self.ref is not None
            found = self._registry.version(self.ref)
            if self.current is not None and found.version == self.current.version:
                return self.current
            model = self._registry.load(f"models:/{found.name}/{found.version}")
            name, number = found.name, found.version
        signature = model.signature
        columns = tuple(signature.columns) if signature else ()
        numeric = signature is not None and all(
            c.type in ("integer", "float", "boolean") for c in signature.inputs
        )
        floats = signature is not None and all(c.type == "float" for c in signature.inputs)
        output, classes = _outputs_of(model)
        memory = model_bytes(model.raw)
        loaded = Loaded(name, number, model, columns, numeric, floats, output, classes, memory)
        before, self.current = self.current, loaded
        if before is not None and before.version != loaded.version and self.on_switch:
            self.on_switch(before, loaded)
        return loaded

    def start_following(self) -> None:
        """Poll the registry; when the alias moves, load the new version and switch: requests
        in flight finish on the old one, new ones get the new one, none fails."""
        if self.package is not None or self.ref is None or "@" not in self.ref:
            return
        self._thread = threading.Thread(target=self._follow, name="ferryml-follow", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.load()
            except FerryError as e:
                log.warning(
                    "could not reload %s: %s; still serving version %s",
                    self.ref,
                    e,
                    self.current.version if self.current else "-",
                )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 5)
        if self._registry is not None:
            self._registry.close()
            self._registry = None


def model_bytes(model: Any) -> int:
    """The bytes a loaded model holds, sized as its pickled form: arrays (numpy's, and the
    node arrays of scikit-learn's trees) are counted from their buffers, passed out of band,
    so they are not copied; a booster that pickles itself (XGBoost, LightGBM) is copied once.

    Why not at load: tracemalloc made a cold load hundreds of times slower (it traces every
    import), and the resident-size delta counts the flavor's imports and whatever other
    threads allocate meanwhile. 0 when the model cannot be pickled.
    """
    sizes: list[int] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> None:
        sizes.append(buffer.raw().nbytes)

    try:
        inline = len(pickle.dumps(model, protocol=5, buffer_callback=out_of_band))
    except Exception:  # noqa: BLE001 - any object pickle refuses: unknown, not an error
        log.debug("could not size model %r", type(model).__name__, exc_info=True)
        return 0
    return inline + sum(sizes)


def _outputs_of(model: LoadedModel) -> tuple[np.dtype[Any], tuple[Any, ...] | None]:
    """The type of ``predict``'s values and a classifier's classes, found by predicting the
    input example once (which also warms the model up), so what the server declares is
    what it answers."""
    classes = getattr(model.raw, "classes_", None) if model.has_proba else None
    known = tuple(np.asarray(classes).tolist()) if classes is not None else None
    example = model.metadata.input_example
    if example:
        try:
            values = np.asarray(to_jsonable(model.predict(example)))
            if known is None and model.has_proba:
                width = np.asarray(model.predict_proba(example)).shape[-1]
                known = tuple(range(width))
            return _plain_dtype(values), known
        except Exception as e:  # noqa: BLE001 - a model that refuses its own example
            log.warning("could not predict %s's input example: %s", model.uri, e)
    if classes is not None:
        return _plain_dtype(np.asarray(classes)), known
    return np.dtype(np.float64), known


def _plain_dtype(values: np.ndarray) -> np.dtype[Any]:
    kind = values.dtype.kind
    if kind == "b":
        return np.dtype(np.bool_)
    if kind in "iu":
        return np.dtype(np.int64)
    if kind == "f":
        return np.dtype(np.float64)
    return np.dtype(object)


def now_ms() -> float:
    return time.perf_counter() * 1000
