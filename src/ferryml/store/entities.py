"""The tracking nouns as frozen dataclasses: what store rows become before they leave
``ferryml.store``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ArtifactEntry",
    "Experiment",
    "Metric",
    "Run",
    "RunData",
    "RunInfo",
    "RunInput",
    "RunStatus",
]


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    parent_run_id: str | None
    user: str
    description: str
    failure: str | None


@dataclass(frozen=True)
class RunData:
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class RunInput:
    """A reference to a dataset version that a run read."""

    name: str
    version: str
    digest: str
    context: str


@dataclass(frozen=True)
class ArtifactEntry:
    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData
    inputs: tuple[RunInput, ...] = ()

    @property
    def run_id(self) -> str:
        return self.info.run_id
