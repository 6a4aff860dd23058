"""The prediction log's partitions: pending requests encoded as one Arrow table per
deployment and flush, and partitions read back.

Partition format: columns ``id``, ``time`` (timestamp[us, UTC]), ``deployment``,
``route``, ``model``, ``version``, ``latency_ms``, ``request_id`` (the HTTP request's
``X-Request-Id``; absent from partitions written before it existed), one ``feature.<name>``
column per input feature, and ``prediction``; schema metadata ``ferryml.prediction = json`` marks a
prediction column stored as JSON text because Arrow could not type it.
"""

from __future__ import annotations

import io
import json
import logging
import math
import operator
import time as _time
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ferryml.errors import InvalidArgument
from ferryml.serving._frames import shared_float_columns

__all__ = [
    "FEATURE_PREFIX",
    "META_COLUMNS",
    "Batch",
    "Outputs",
    "encode",
    "make_batch",
    "parquet_bytes",
    "read_partition_table",
    "read_partitions",
]

log = logging.getLogger(__name__)

FEATURE_PREFIX = "feature."
META_COLUMNS = (
    "id",
    "time",
    "deployment",
    "route",
    "model",
    "version",
    "latency_ms",
    "request_id",
)
_JSON_KEY = b"ferryml.prediction"

# One output a row: scalars, lists, or a frame of named outputs.
Outputs: TypeAlias = Sequence[Any] | np.ndarray | pd.Series | pd.DataFrame
# (deployment, route, model, version, ids, features, outputs, latency_ms, time, request_id);
# latency_ms and request_id one for the request, or one a row (an array, a list) for the
# requests of one predict call; write-ahead files of older servers hold the first nine alone.
Batch = tuple[
    str,
    str,
    str,
    int,
    Sequence[Any],
    pd.DataFrame,
    Outputs,
    float | np.ndarray,
    float,
    str | None | list[str | None],
]

_NAME_LIMIT = 256  # deployment and model names, as the metadata store keeps them


def make_batch(
    deployment: str,
    route: str,
    model: str,
    version: int,
    ids: Sequence[str],
    features: pd.DataFrame,
    outputs: Outputs,
    latency_ms: Any,
    time: float | None,
    request_id: Any,
    *,
    per_row: bool = False,
) -> Batch:
    """A request as the log keeps it (with ``per_row``, the requests of one predict call,
    ``latency_ms`` and ``request_id`` one a row), checked and converted here, where a bad
    value is the caller's error, so that a flush never meets one.

    Raises:
        InvalidArgument: the lengths differ, a name is empty or too long, ``features`` is
            not a DataFrame, or a number is not one.
    """
    if not isinstance(features, pd.DataFrame):
        raise InvalidArgument(
            f"features must be a pandas DataFrame; got {type(features).__name__}."
        )
    n = len(ids)
    if len(features) != n or len(outputs) != n:
        raise InvalidArgument(
            f"ids, features and outputs must have one row per prediction; got {n} ids, "
            f"{len(features)} feature rows and {len(outputs)} outputs."
        )
    if not (
        isinstance(deployment, str)
        and isinstance(model, str)
        and 0 < len(deployment) <= _NAME_LIMIT
        and 0 < len(model) <= _NAME_LIMIT
        and isinstance(route, str)
    ):
        raise InvalidArgument(
            f"deployment and model must be names of 1 to {_NAME_LIMIT} characters and "
            f"route a string; got deployment={deployment!r:.300}, route={route!r:.300}, "
            f"model={model!r:.300}."
        )
    try:
        at = _time.time() if time is None else float(time)
        number = operator.index(version)
        if per_row:
            latency: float | np.ndarray = np.asarray(latency_ms, dtype=np.float64)
            requests: Any = [None if r is None else str(r) for r in request_id]
        else:
            latency = float(latency_ms)
            requests = None if request_id is None else str(request_id)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"version must be a whole number, latency_ms and time numbers (time in seconds "
            f"since the epoch); got version={version!r:.50}, latency_ms={latency_ms!r:.50}, "
            f"time={time!r:.50}."
        ) from e
    if per_row and (np.shape(latency) != (n,) or len(requests) != n):
        raise InvalidArgument(
            f"latency_ms and request_ids must have one value a row; got {np.size(latency)} "
            f"and {len(requests)} for {n} rows."
        )
    return (deployment, route, model, number, ids, features, outputs, latency, at, requests)


def encode(
    deployment: str, batches: list[Batch]
) -> list[tuple[str, tuple[pa.Table, list[str], np.ndarray]]]:
    """The partition tables of one deployment's batches: one table, or, if they cannot be
    encoded together, one per batch. A batch that cannot be encoded at all is logged and
    dropped rather than kept: kept, it would block every later flush."""
    try:
        return [(deployment, _partition_table(deployment, batches))]
    except Exception:  # noqa: BLE001 - any encoding failure; the store is not involved yet
        if len(batches) == 1:
            log.exception(
                "Dropping %d predictions of deployment %r that cannot be stored as Parquet",
                len(batches[0][4]),
                deployment,
            )
            return []
    return [part for batch in batches for part in encode(deployment, [batch])]


def parquet_bytes(table: pa.Table) -> bytes:
    """One partition table as a Parquet file's bytes."""
    sink = io.BytesIO()
    # Dictionaries pay off for repeated text (names, categories) only: for floats
    # and unique ids Parquet would build one, then fall back to plain.
    text = [
        f.name
        for f in table.schema
        if f.name != "id" and (pa.types.is_string(f.type) or pa.types.is_dictionary(f.type))
    ]
    pq.write_table(table, sink, compression="zstd", use_dictionary=text)
    return sink.getvalue()


def _partition_table(
    deployment: str, batches: Sequence[Batch]
) -> tuple[pa.Table, list[str], np.ndarray]:
    """The Arrow table of one deployment's batches, its ids, and its times in µs."""
    counts = np.fromiter((len(b[4]) for b in batches), dtype=np.int64, count=len(batches))
    ids = [str(i) for b in batches for i in b[4]]
    times = np.repeat(np.array([round(b[8] * 1e6) for b in batches], dtype=np.int64), counts)
    table = _features([b[5] for b in batches])
    meta = {
        "id": pa.array(ids, type=pa.string()),
        "time": pa.array(times, type=pa.timestamp("us", tz="UTC")),
        "deployment": pa.array([deployment] * len(ids), type=pa.string()),
        "route": pa.array(np.repeat(np.array([b[1] for b in batches], dtype=object), counts)),
        "model": pa.array(np.repeat(np.array([b[2] for b in batches], dtype=object), counts)),
        "version": pa.array(np.repeat(np.array([b[3] for b in batches]), counts), pa.int64()),
        "latency_ms": pa.array(_per_row([b[7] for b in batches], counts, np.float64)),
        "request_id": pa.array(
            _per_row([b[9] if len(b) > 9 else None for b in batches], counts, object),
            pa.string(),
        ),
    }
    for position, (name, column) in enumerate(meta.items()):
        table = table.add_column(position, name, column)
    prediction, as_json = _predictions([b[6] for b in batches])
    table = table.append_column("prediction", prediction)
    if as_json:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _JSON_KEY: b"json"})
    return table, ids, times


def _per_row(values: list[Any], counts: np.ndarray, dtype: Any) -> np.ndarray:
    """A column of the batches' rows: each batch's value repeated over its rows, or its
    values when it gave one a row (``record_many``)."""
    rows = [isinstance(v, np.ndarray | list) for v in values]
    if not any(rows):
        return np.repeat(np.array(values, dtype=dtype), counts)
    return np.concatenate(
        [
            np.asarray(v, dtype=dtype) if each else np.full(n, v, dtype=dtype)
            for v, n, each in zip(values, counts, rows, strict=True)
        ]
    )


def read_partitions(blobs: Sequence[bytes]) -> pd.DataFrame:
    """The rows of partitions as written (features still prefixed ``feature.``), in blob
    order; features missing from a partition are NaN there, and a prediction column of lists
    comes back as lists."""
    tables = [read_partition_table(blob) for blob in blobs]
    typed = [t for t in tables if (t.schema.metadata or {}).get(_JSON_KEY) != b"json"]
    texts = [t for t in tables if (t.schema.metadata or {}).get(_JSON_KEY) == b"json"]
    frames = [_frame(group, as_json=group is texts) for group in (typed, texts) if group]
    if not frames:
        return pd.DataFrame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def read_partition_table(blob: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """One partition as Arrow, only ``columns`` when given."""
    # Partitions are small: a thread pool per read costs more than it saves.
    return pq.read_table(
        pa.BufferReader(blob), columns=list(columns) if columns else None, use_threads=False
    )


def _frame(tables: list[pa.Table], *, as_json: bool) -> pd.DataFrame:
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # A feature typed differently across partitions: pandas unifies it as objects.
        return pd.concat([_frame([t], as_json=as_json) for t in tables], ignore_index=True)
    frame = table.to_pandas(use_threads=table.num_rows >= 1_000_000)
    prediction = table.column("prediction")
    if as_json:
        frame["prediction"] = [None if v is None else json.loads(v) for v in prediction.to_pylist()]
    elif pa.types.is_list(prediction.type) or pa.types.is_large_list(prediction.type):
        frame["prediction"] = pd.Series(prediction.to_pylist(), dtype=object)
    return frame


def _features(frames: list[pd.DataFrame]) -> pa.Table:
    """The frames one under the other as Arrow, their columns prefixed ``feature.``. Float
    frames of the same unique columns (the server's common case) go straight from one
    array to Arrow: a concat of many one-row frames, or a frame built from the array (its
    column Index first), costs more than the rest of a flush."""
    same = shared_float_columns(frames)
    if same is not None:
        columns = np.ascontiguousarray(np.vstack([f.to_numpy() for f in frames]).T)
        return pa.table(
            {
                f"{FEATURE_PREFIX}{name}": pa.array(values, from_pandas=True)  # NaN as null
                for name, values in zip(same, columns, strict=True)
            }
        )
    frame = pd.concat([_unique_columns(f) for f in frames], ignore_index=True)
    frame.columns = [f"{FEATURE_PREFIX}{c}" for c in frame.columns]
    return _arrow(frame)


def _unique_columns(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.columns.is_unique:
        return frame
    seen: dict[str, int] = {}
    names = []
    for c in map(str, frame.columns):
        seen[c] = seen.get(c, -1) + 1
        names.append(c if seen[c] == 0 else f"{c}.{seen[c]}")
    renamed = frame.copy(deep=False)
    renamed.columns = names
    return renamed


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Arrow; a column Arrow cannot type (say, ints mixed with strings) is
    stored as text rather than blocking the log."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        pass
    fixed = frame.copy(deep=False)
    for name in fixed.columns:
        try:
            pa.array(fixed[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            fixed[name] = fixed[name].map(_text)
    return pa.Table.from_pandas(fixed, preserve_index=False)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _predictions(pieces: list[Outputs]) -> tuple[pa.Array, bool]:
    if all(isinstance(p, np.ndarray) and p.ndim == 1 and p.dtype.kind in "biuf" for p in pieces):
        return pa.array(np.concatenate(pieces)), False
    values: list[Any] = []
    for piece in pieces:
        if isinstance(piece, pd.DataFrame):  # several named outputs a row
            values.extend(piece.to_dict("records"))
        elif isinstance(piece, np.ndarray | pd.Series):
            values.extend(piece.tolist())
        else:
            values.extend(piece)
    try:
        return pa.array(values, from_pandas=True), False
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        texts = [json.dumps(_plain(v), default=str) for v in values]
        return pa.array(texts, type=pa.string()), True


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
