"""What a client writes to the store in batches: one small tuple per logged value.

The same tuples are the lines of the local journal, so a batch can be replayed after a
crash; applying a batch twice leaves the store as applying it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "ArtifactRecord",
    "EndRecord",
    "InputRecord",
    "MetricRecord",
    "ParamRecord",
    "Record",
    "StartRecord",
    "TagRecord",
    "batch_of_records",
    "metric_record",
    "records_from_batch",
]


class MetricRecord(NamedTuple):
    """A metric value, with its fields in the order of the ``metrics`` table's columns so a
    batch goes to the database as it is. NaN is stored as ``value=0.0, is_nan=True``: SQLite
    cannot store NaN. Build one with ``metric_record``."""

    run_id: str
    key: str
    step: int
    timestamp: int
    value: float
    is_nan: bool


def metric_record(run_id: str, key: str, value: float, timestamp: int, step: int) -> MetricRecord:
    if value != value:
        return MetricRecord(run_id, key, step, timestamp, 0.0, True)
    return MetricRecord(run_id, key, step, timestamp, value, False)


class ParamRecord(NamedTuple):
    run_id: str
    key: str
    value: str


class TagRecord(NamedTuple):
    run_id: str
    key: str
    value: str


class ArtifactRecord(NamedTuple):
    run_id: str
    path: str
    digest: str
    size: int


class InputRecord(NamedTuple):
    run_id: str
    name: str
    version: str
    digest: str
    context: str


class StartRecord(NamedTuple):
    """A run this process started; if the process dies before ending it, it was KILLED."""

    run_id: str


class EndRecord(NamedTuple):
    """A run's status change: ended, or RUNNING again (with no end time) when resumed."""

    run_id: str
    status: str
    end_time: int | None
    failure: str | None


Record = (
    MetricRecord | ParamRecord | TagRecord | ArtifactRecord | InputRecord | StartRecord | EndRecord
)


# A batch as it travels to a team server: records grouped by kind, each as its fields.
_BATCH_FIELDS: dict[type, str] = {
    StartRecord: "starts",
    MetricRecord: "metrics",
    ParamRecord: "params",
    TagRecord: "tags",
    ArtifactRecord: "artifacts",
    InputRecord: "inputs",
    EndRecord: "ends",
}


def batch_of_records(records: list[Record]) -> dict[str, list[Any]]:
    batch: dict[str, list[Any]] = {}
    for record in records:
        field = _BATCH_FIELDS[type(record)]
        batch.setdefault(field, []).append(record.run_id if field == "starts" else record)
    return batch


def records_from_batch(batch: Mapping[str, Sequence[Any]]) -> list[Record]:
    """The records of a batch, runs started first and status changes last."""
    records: list[Record] = []
    for kind, field in _BATCH_FIELDS.items():
        for fields in batch.get(field, ()):
            records.append(kind(fields) if field == "starts" else kind(*fields))
    return records
