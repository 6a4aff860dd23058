"""Logged predictions and their ground truth: ``load`` a window of a deployment's
predictions as a DataFrame (the input of monitoring), and join true labels to them by
prediction id with ``record_feedback`` or ``import_feedback``.

Both read what the servers' prediction logs have flushed: a prediction is visible here
once its server flushed it (every ``flush_interval``, 1 s by default, and on shutdown).
Feedback for a prediction not yet flushed is reported in ``unknown_ids``, not stored:
send it again a moment later (a server may call ``PredictionLog.flush()`` first to see
its own latest predictions).

Example:
    >>> from ferryml import predictions  # this module, under its short name
    >>> report = predictions.record_feedback([("0190f3a1c2d4e5f6a7b8c9d0e1f2a3b4", 1)])
    >>> frame = predictions.load("churn", since="2024-06-01T00:00:00Z")
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ferryml._identity import current_user
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.serving.predlog import (
    FEATURE_PREFIX,
    META_COLUMNS,
    read_partition_table,
    read_partitions,
)
from ferryml.store.factory import open_artifact_store, open_prediction_store
from ferryml.store.loop import Feedback, PredictionPartition, PredictionStore

__all__ = [
    "FeedbackReport",
    "find_prediction",
    "import_feedback",
    "load",
    "logged_spans",
    "record_feedback",
]

_RESERVED = {*META_COLUMNS, "prediction", "label"}
_META_TYPES = {
    "id": "str",
    "time": "datetime64[us, UTC]",
    "deployment": "str",
    "route": "str",
    "model": "str",
    "version": "int64",
    "latency_ms": "float64",
    "request_id": "str",
}
_SHOWN = 5  # ids or rows quoted in an error message


@dataclass(frozen=True)
class FeedbackReport:
    """What became of a batch of labels.

    Attributes:
        accepted: labels stored (an id given twice counts twice).
        unknown_ids: ids no flushed prediction has, in the order first given; not stored.
        updated: accepted labels that replaced an earlier label of the same id.
    """

    accepted: int
    unknown_ids: list[str] = field(default_factory=list)
    updated: int = 0


def load(
    deployment: str,
    *,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    with_feedback: bool = True,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The predictions ``deployment`` logged with ``since <= time < until``, oldest first.

    Columns: ``id``, ``time`` (UTC), ``deployment``, ``route``, ``model``, ``version``,
    ``latency_ms``, one column per input feature with its type, ``prediction`` (scalars, or
    lists for multi-output models) and, with ``with_feedback``, ``label`` (NaN or None where
    no label has arrived). A feature named like one of those columns comes back as
    ``feature.<name>``. Times without a zone are UTC.

    Raises:
        InvalidArgument: ``since``/``until`` is not a time, or ``since`` is after ``until``.
        NotFound: ``deployment`` never logged a prediction.

    Example:
        >>> frame = load("churn", since="2024-06-01", until="2024-06-02")
    """
    start, end, since_ms, until_ms = _window(deployment, since, until)
    with _stores(settings) as (store, artifacts):
        partitions = store.list_partitions(deployment, since=since_ms, until=until_ms)
        known = [] if partitions else store.list_deployments()
        if not partitions and deployment not in known:
            raise NotFound(
                f"No predictions logged for deployment {deployment!r}. "
                + (
                    f"Deployments with predictions: {', '.join(map(repr, known))}."
                    if known
                    else "No deployment has logged predictions yet."
                )
            )
        frame = read_partitions([artifacts.get_bytes(p.digest) for p in partitions])
        labels = (
            {
                f.prediction_id: json.loads(f.label)
                for f in store.list_feedback(deployment, since=since_ms, until=until_ms)
            }
            if with_feedback
            else {}
        )
    frame = _within(_columns(frame), start, end)
    if not frame["time"].is_monotonic_increasing:
        frame = frame.sort_values("time", kind="stable")
    frame = frame.reset_index(drop=True)
    if with_feedback:
        frame["label"] = _labels(frame["id"], labels)
    return frame


def scan(
    deployment: str,
    *,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    settings: Settings | None = None,
) -> Iterator[pd.DataFrame]:
    """``load``'s rows (without labels) a partition at a time, oldest partition first, for
    windows larger than memory: one partition (at most 500,000 rows once compacted) is in
    memory at once. Each frame has ``load``'s columns, its rows in time order.

    Raises:
        InvalidArgument, NotFound: as ``load``.

    Example:
        >>> rows = sum(len(frame) for frame in scan("churn", since="2024-06-01"))
    """
    start, end, since_ms, until_ms = _window(deployment, since, until)
    with _stores(settings) as (store, artifacts):
        partitions = store.list_partitions(deployment, since=since_ms, until=until_ms)
        if not partitions and deployment not in store.list_deployments():
            raise NotFound(f"No predictions logged for deployment {deployment!r}.")
        for partition in partitions:
            frame = read_partitions([artifacts.get_bytes(partition.digest)])
            frame = _within(_columns(frame), start, end)
            if len(frame):
                yield frame.sort_values("time", kind="stable").reset_index(drop=True)


def logged_spans(
    deployment: str,
    *,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    settings: Settings | None = None,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The times of the first and the last row (both included) of each stored part of
    ``deployment``'s log that may hold rows with ``since <= time < until``, oldest first;
    empty when it logged none there. Read from the index alone: no row is read.

    Raises:
        InvalidArgument: as ``load``.
    """
    _, _, since_ms, until_ms = _window(deployment, since, until)
    with _stores(settings) as (store, _):
        partitions = store.list_partitions(deployment, since=since_ms, until=until_ms)
    return [(_utc_ms(p.min_time), _utc_ms(p.max_time)) for p in partitions]


def _utc_ms(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def record_feedback(
    items: Iterable[tuple[str, Any]] | Iterable[Mapping[str, Any]],
    *,
    settings: Settings | None = None,
) -> FeedbackReport:
    """Store true labels of logged predictions, joined by prediction id.

    Args:
        items: ``(prediction_id, label)`` pairs, or mappings with keys ``prediction_id``
            and ``label``. A label is any JSON value but null (a number, a string, a list,
            ...). An id given twice keeps its last label.
        settings: the stores (default: ``Settings.resolve()``).

    Returns:
        A ``FeedbackReport``: labels accepted, ids no flushed prediction has (not stored),
        and how many accepted labels replaced an earlier one.

    Raises:
        InvalidArgument: an item is malformed or a label is missing or not JSON.
    """
    pairs = _pairs(items)
    return _store_feedback(pairs, settings)


def import_feedback(
    path: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    label_column: str = "label",
    settings: Settings | None = None,
) -> FeedbackReport:
    """``record_feedback`` from a CSV or Parquet file with an id and a label column; the
    ids are in ``id_column``, by default ``prediction_id``, or ``id`` in a file without one
    (the name the server's answers give them).

    Raises:
        NotFound: there is no such file.
        InvalidArgument: the file is not CSV or Parquet, cannot be read, lacks a column,
            or has rows without an id or a label.
    """
    source = Path(path)
    frame = _read_table(source, [id_column] if id_column else ["prediction_id", "id"])
    chosen = id_column
    if chosen is None:
        plain = "prediction_id" not in frame.columns and "id" in frame.columns
        chosen = "id" if plain else "prediction_id"
    missing = [repr(c) for c in (chosen, label_column) if c not in frame.columns]
    if id_column is None and missing and missing[0] == "'prediction_id'":
        missing[0] = "'prediction_id' (or 'id')"
    if missing:
        raise InvalidArgument(
            f"{source} has no column {' or '.join(missing)}; its columns are "
            f"{', '.join(map(repr, map(str, frame.columns))) or 'none'}. Name the columns "
            "to use (id_column and label_column; in the CLI --id-column and --label-column)."
        )
    ids = frame[chosen].tolist()
    labels = frame[label_column].tolist()

    def where(row: int) -> str:  # what a person finds in the file
        return f"line {row + 2}" if source.suffix.lower() == ".csv" else f"row {row + 1}"

    for column, values in ((chosen, ids), (label_column, labels)):
        empty = [i for i, value in enumerate(values) if _missing(value)]
        if empty:
            first = "" if column == chosen else f", id {str(ids[empty[0]])!r}"
            raise InvalidArgument(
                f"{source}: {len(empty)} rows have no {column!r} (first at "
                f"{where(empty[0])}{first}). Fill them in or drop them."
            )
    pairs = [(_id_text(pid), _plain(label)) for pid, label in zip(ids, labels, strict=True)]
    return _store_feedback(_pairs(pairs), settings)


# -- internals ---------------------------------------------------------------------------


@contextmanager
def _stores(settings: Settings | None) -> Iterator[tuple[PredictionStore, Any]]:
    resolved = settings or Settings.resolve()
    store = open_prediction_store(resolved)
    artifacts: Any = None
    try:
        artifacts = open_artifact_store(resolved)
        yield store, artifacts
    finally:
        store.close()
        if hasattr(artifacts, "close"):  # a team server's: its connections
            artifacts.close()


def _window(
    deployment: Any, since: Any, until: Any
) -> tuple[pd.Timestamp | None, pd.Timestamp | None, int | None, int | None]:
    """The window's bounds as times and as ms for the index; raises on bad arguments."""
    if not isinstance(deployment, str) or not deployment:
        raise InvalidArgument(f"deployment must be a deployment's name; got {deployment!r:.200}.")
    start, end = _instant(since, "since"), _instant(until, "until")
    if start is not None and end is not None and start > end:
        raise InvalidArgument(f"since ({start.isoformat()}) is after until ({end.isoformat()}).")
    since_ms = None if start is None else math.floor(start.value / 1_000_000)
    until_ms = None if end is None else math.ceil(end.value / 1_000_000)
    return start, end, since_ms, until_ms


def _within(frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> Any:
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame["time"] >= start).to_numpy()
    if end is not None:
        keep &= (frame["time"] < end).to_numpy()
    return frame[keep]


def _instant(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    if not isinstance(value, str | dt.datetime):
        raise InvalidArgument(
            f"{name} must be a datetime or an ISO 8601 string such as "
            f"'2024-06-01T12:00:00Z'; got {type(value).__name__} {value!r}."
        )
    try:
        stamp = pd.Timestamp(value)
    except ValueError as e:
        raise InvalidArgument(
            f"{name}={value!r} is not a time; use an ISO 8601 string such as "
            "'2024-06-01T12:00:00Z' or a datetime."
        ) from e
    if pd.isna(stamp):
        raise InvalidArgument(
            f"{name}={value!r} is not a time; use an ISO 8601 string such as "
            "'2024-06-01T12:00:00Z' or a datetime."
        )
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The log's columns in order, features under their own names."""
    if not len(frame):
        return pd.DataFrame(
            {name: pd.Series(dtype=kind) for name, kind in _META_TYPES.items()}
            | {"prediction": pd.Series(dtype=object)}
        )
    for name in META_COLUMNS:
        if name not in frame.columns:  # partitions written before the column existed
            frame[name] = None
    features = [c for c in frame.columns if c.startswith(FEATURE_PREFIX)]
    names = {}
    for column in features:
        name = column[len(FEATURE_PREFIX) :]
        names[column] = column if name in _RESERVED else name
    return frame[[*META_COLUMNS, *features, "prediction"]].rename(columns=names)


def _labels(ids: pd.Series, labels: dict[str, Any]) -> pd.Series:
    """Labels by id: numbers stay numeric with NaN where none arrived, others get None."""
    found = ids.map(labels) if labels else pd.Series(None, index=ids.index, dtype=object)
    if pd.api.types.is_numeric_dtype(found) and not pd.api.types.is_bool_dtype(found):
        return found
    return found.astype(object).where(found.notna(), None)


def _pairs(items: Any) -> list[tuple[str, Any]]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise InvalidArgument(
            "Feedback must be a list of (prediction_id, label) pairs or of "
            f"{{'prediction_id': ..., 'label': ...}} mappings; got {type(items).__name__}."
        )
    pairs = []
    for position, item in enumerate(items):
        if isinstance(item, Mapping):
            absent = [k for k in ("prediction_id", "label") if k not in item]
            if absent:
                raise InvalidArgument(
                    f"Feedback item {position} has no {' or '.join(map(repr, absent))}: "
                    f"{dict(item)!r:.200}. Give both prediction_id and label."
                )
            pid, label = item["prediction_id"], item["label"]
        elif isinstance(item, tuple | list) and len(item) == 2:
            pid, label = item
        else:
            raise InvalidArgument(
                f"Feedback item {position} is {item!r:.200}; give a (prediction_id, label) "
                "pair or a mapping with keys prediction_id and label."
            )
        if not isinstance(pid, str) or not pid:
            raise InvalidArgument(
                f"Feedback item {position} has prediction_id {pid!r:.200}; ids are non-empty "
                "strings, as the server returned them."
            )
        label = _plain(label)
        if _missing(label):
            raise InvalidArgument(
                f"Feedback item {position} (prediction_id {pid!r}) has no label; give a "
                "value, or leave the item out until the label is known."
            )
        try:
            text = json.dumps(label, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(
                f"Feedback item {position} (prediction_id {pid!r}) has label {label!r:.200}, "
                f"which is not a JSON value ({e}); use a number, string, bool or list."
            ) from e
        pairs.append((pid, text))
    return pairs


def _store_feedback(pairs: list[tuple[str, str]], settings: Settings | None) -> FeedbackReport:
    if not pairs:
        return FeedbackReport(accepted=0, unknown_ids=[], updated=0)
    last: dict[str, str] = dict(pairs)  # an id given twice keeps its last label
    with _stores(settings) as (store, artifacts):
        found = _find_predictions(store, artifacts, sorted(last))
        now = int(time.time() * 1000)
        rows = [
            Feedback(pid, *found[pid], label=text, time=now)
            for pid, text in last.items()
            if pid in found
        ]
        replaced = store.upsert_feedback(rows, user=current_user())
    accepted = updated = 0
    seen: set[str] = set()
    for pid, _ in pairs:
        if pid in found:
            accepted += 1
            updated += pid in seen or pid in replaced
            seen.add(pid)
    unknown = [pid for pid in last if pid not in found]
    return FeedbackReport(accepted=accepted, unknown_ids=unknown, updated=updated)


def find_prediction(
    prediction_id: str, *, settings: Settings | None = None
) -> tuple[str, str, int] | None:
    """The deployment, model and version of the flushed prediction ``prediction_id``;
    None when there is none. Only the partitions whose id range holds it are read."""
    import pyarrow.compute as pc

    with _stores(settings) as (store, artifacts):
        partitions = _holding(
            store.search_partitions_by_id(prediction_id, prediction_id), [prediction_id]
        )
        for partition in partitions:
            blob = artifacts.get_bytes(partition.digest)
            table = read_partition_table(blob, ["id", "model", "version"])
            hits = table.filter(pc.equal(table["id"], prediction_id))
            if hits.num_rows:
                row = hits.slice(0, 1).to_pylist()[0]
                return partition.deployment, str(row["model"]), int(row["version"])
    return None


def _find_predictions(
    store: PredictionStore, artifacts: Any, ids: list[str]
) -> dict[str, tuple[str, int]]:
    """For each of the sorted ``ids`` that a flushed prediction has: its deployment and
    time (ms). Only the partitions whose id range holds one of them are read."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found: dict[str, tuple[str, int]] = {}
    wanted = pa.array(ids, type=pa.string())
    for partition in _holding(store.search_partitions_by_id(ids[0], ids[-1]), ids):
        table = read_partition_table(artifacts.get_bytes(partition.digest), ["id", "time"])
        hits = table.filter(pc.is_in(table["id"], value_set=wanted))
        micros = hits["time"].cast(pa.int64()).to_pylist()
        for pid, us in zip(hits["id"].to_pylist(), micros, strict=True):
            found.setdefault(pid, (partition.deployment, us // 1000))
    return found


def _holding(partitions: list[PredictionPartition], ids: list[str]) -> list[PredictionPartition]:
    chosen = []
    for p in partitions:
        at = bisect.bisect_left(ids, p.min_id)
        if at < len(ids) and ids[at] <= p.max_id:
            chosen.append(p)
    return chosen


def _read_table(path: Path, id_columns: list[str]) -> pd.DataFrame:
    from ferryml.data.workspace import check_parquet_text, read_errors

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument(
            f"{path} is neither CSV nor Parquet; give a file ending in .csv or .parquet."
        )
    if not path.is_file():
        raise NotFound(f"File {str(path)!r} not found. Check the path.")
    try:
        if suffix == ".csv":
            # Ids stay text: "0123" must not become 123.
            return pd.read_csv(path, dtype=dict.fromkeys(id_columns, str), keep_default_na=True)
        frame = pd.read_parquet(path)
        check_parquet_text(path)
        return frame
    except read_errors() as e:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise InvalidArgument(f"{path} cannot be read as {kind}: {e}") from e


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _id_text(value: Any) -> str:
    return str(_plain(value))


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays as the Python values JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
