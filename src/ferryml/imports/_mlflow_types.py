"""What ``ferry import mlflow`` reads from a source, whatever the source: ferryml's own
entities, with where the source keeps each one's files."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from ferryml.errors import InvalidArgument
from ferryml.store.entities import Experiment, RegisteredModel, Run, RunStatus
from ferryml.store.sql_mlflow import DatasetInput, LoggedModel

__all__ = [
    "MODEL_STATUS",
    "MetricRow",
    "Source",
    "SourceLoggedModel",
    "SourceModel",
    "SourceRun",
    "SourceVersion",
    "latest_values",
    "local_files",
    "run_status",
]

# A logged value in the order of ferryml's metrics table: (run_id, key, step, timestamp,
# value, is_nan), NaN stored as value 0.0 with is_nan true; a batch goes to the store as is.
MetricRow = tuple[str, str, int, int, float, bool]
# MLflow stores a logged model's status as its proto enum's number (tables and meta.yaml).
MODEL_STATUS = {
    1: "LOGGED_MODEL_PENDING",
    2: "LOGGED_MODEL_READY",
    3: "LOGGED_MODEL_UPLOAD_FAILED",
}


@dataclass(frozen=True)
class SourceRun:
    """A run (its ``data.metrics`` empty: the history is read apart) and the URI of its
    artifacts."""

    run: Run
    artifact_uri: str


@dataclass(frozen=True)
class SourceLoggedModel:
    model: LoggedModel
    artifact_location: str


@dataclass(frozen=True)
class SourceVersion:
    """A version as MLflow numbers it; its files are at ``storage_location`` (or ``source``)."""

    version: int
    source: str
    run_id: str | None
    description: str
    creation_time: int
    storage_location: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceModel:
    model: RegisteredModel
    versions: list[SourceVersion]


class Source(Protocol):
    """An MLflow tracking store to read from. What cannot be read is added to ``problems``
    (by name, with the reason) and left out; the rest is returned."""

    problems: list[str]

    def experiments(self) -> list[Experiment]: ...

    def runs(self, experiment_id: str) -> Iterator[SourceRun]: ...

    def history(self, run_id: str) -> Sequence[MetricRow]:
        """Every logged value of the run's metrics.

        Raises:
            FerryError: the history cannot be read (the run is then skipped).
        """
        ...

    def latest(self, run_id: str) -> dict[str, float]:
        """Per metric key, the value at the highest (step, timestamp, value): what a
        search sees, and what the import's check compares."""
        ...

    def inputs(self, run_id: str) -> list[DatasetInput]: ...

    def logged_models(self) -> list[SourceLoggedModel]: ...

    def registered_models(self) -> list[SourceModel]: ...

    def files(self, uri: str) -> Iterator[tuple[str, Path]]:
        """The files under artifact URI ``uri``: (path relative to it, a local copy to read
        before the next is yielded); nothing when there is no such folder.

        Raises:
            FerryError, OSError: a file cannot be read.
        """
        ...

    def close(self) -> None: ...


def latest_values(history: Sequence[MetricRow]) -> dict[str, float]:
    """Per key, the value at the highest (step, timestamp, value), as ferryml's store
    keeps it (a NaN ranks as its stored 0.0)."""
    best: dict[str, MetricRow] = {}
    for row in history:
        current = best.get(row[1])
        if current is None or row[2:] > current[2:]:
            best[row[1]] = row
    return {key: math.nan if row[5] else row[4] for key, row in best.items()}


def run_status(status: str) -> RunStatus:
    """ferryml's status of an MLflow run status (SCHEDULED has not ended: RUNNING)."""
    return RunStatus.RUNNING if status == "SCHEDULED" else RunStatus(status)


def local_files(uri: str, artifacts_root: str | None) -> Iterator[tuple[str, Path]]:
    """The files under a local artifact URI (a path, ``file:``, or ``mlflow-artifacts:``
    under ``artifacts_root``, the MLflow server's ``--artifacts-destination``).

    Raises:
        InvalidArgument: the URI names no folder of this machine.
    """
    if not uri:
        return
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        if artifacts_root is None:
            raise InvalidArgument(
                f"artifacts at {uri} are on an MLflow server; pass --artifacts-root (its "
                "--artifacts-destination folder), or import from the server's URL"
            )
        folder = Path(artifacts_root) / parsed.path.lstrip("/")
    elif parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path))
    else:
        raise InvalidArgument(f"artifacts at {uri} are not on this machine")
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        yield path.relative_to(folder).as_posix(), path
