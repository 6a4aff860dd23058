"""What ``ferry import mlflow`` reads from a source, whatever the source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ferryml.store.sql_mlflow import DatasetInput

__all__ = [
    "Source",
    "SourceExperiment",
    "SourceLoggedModel",
    "SourceModel",
    "SourceRun",
    "SourceVersion",
]


@dataclass(frozen=True)
class SourceExperiment:
    experiment_id: str
    name: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRun:
    run_id: str
    experiment_id: str
    name: str
    user: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceLoggedModel:
    model_id: str
    experiment_id: str
    name: str
    source_run_id: str | None
    status: str
    model_type: str
    creation_time: int
    last_update_time: int
    artifact_location: str
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceVersion:
    name: str
    version: int
    source: str
    run_id: str | None
    description: str
    creation_time: int
    storage_location: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceModel:
    name: str
    description: str
    creation_time: int
    tags: Mapping[str, str]
    versions: list[SourceVersion]
    aliases: Mapping[str, int]


class Source(Protocol):
    """An MLflow tracking store to read from."""

    def experiments(self) -> list[SourceExperiment]: ...

    def runs(self, experiment_id: str) -> Iterator[SourceRun]: ...

    def history(self, run_id: str) -> list[tuple[str, float, int, int, bool]]:
        """(key, value, timestamp, step, is_nan) of every logged metric value."""
        ...

    def inputs(self, run_id: str) -> list[DatasetInput]: ...

    def logged_models(self) -> list[SourceLoggedModel]: ...

    def registered_models(self) -> list[SourceModel]: ...

    def close(self) -> None: ...
