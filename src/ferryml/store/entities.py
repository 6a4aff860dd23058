"""The tracking nouns as frozen dataclasses: what store rows become before they leave
``ferryml.store``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ArtifactEntry",
    "CachedOutput",
    "BlobReferences",
    "DatasetVersion",
    "Experiment",
    "Metric",
    "ModelVersion",
    "RegisteredModel",
    "RegistryEvent",
    "Role",
    "Run",
    "RunData",
    "RunInfo",
    "RunInput",
    "RunStatus",
    "Schedule",
    "Token",
    "User",
    "ViewType",
]


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


class ViewType(StrEnum):
    """Which runs or experiments a search returns, by lifecycle stage (as in MLflow)."""

    ACTIVE_ONLY = "active_only"
    DELETED_ONLY = "deleted_only"
    ALL = "all"

    def stages(self) -> tuple[str, ...]:
        """The ``lifecycle_stage`` values this view shows."""
        if self is ViewType.ACTIVE_ONLY:
            return ("active",)
        if self is ViewType.DELETED_ONLY:
            return ("deleted",)
        return ("active", "deleted")


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


@dataclass(frozen=True)
class DatasetVersion:
    """One content-addressed snapshot of a file, a folder or a table."""

    name: str
    version: int
    kind: str  # "file" | "folder" | "table"
    manifest_digest: str
    files: int
    size: int
    source: str
    rows: int | None
    schema: str | None  # JSON of ferryml.data.validation.Schema, for tables
    profile_digest: str | None
    run_id: str | None
    creation_time: int

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class CachedOutput:
    """A pipeline step's stored output: its blob, how it was serialized, the run that made it."""

    digest: str
    format: str
    run_id: str | None


@dataclass(frozen=True)
class Schedule:
    """A pipeline run on a cron schedule, in UTC; times are milliseconds since the epoch.

    ``last_status`` is RUNNING from the moment a scheduler claims an occurrence until it
    records the run's FINISHED or FAILED.
    """

    name: str
    target: str  # "module:pipeline"
    cron: str
    params: Mapping[str, str]
    next_run_time: int
    last_run_time: int | None
    last_run_id: str | None
    last_status: str | None
    creation_time: int


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    creation_time: int
    last_update_time: int
    aliases: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    latest_version: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    """A numbered version of a registered model: a package (by digest) and its lineage."""

    name: str
    version: int
    package_digest: str
    flavor: str
    source: str
    run_id: str | None
    status: str
    description: str
    signature: str | None  # JSON of ferryml.registry.signature.Signature
    data_versions: tuple[str, ...]  # NAME@V the training run read
    profile_digest: str | None
    metrics: Mapping[str, float]
    creation_time: int
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class RegistryEvent:
    """One entry of the audit trail: an alias moved, a version created or changed."""

    id: int
    time: int
    user: str
    name: str
    action: str
    version: int | None
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str
    evidence: Mapping[str, object]


@dataclass(frozen=True)
class BlobReferences:
    """The blobs the metadata store refers to: directly, or through a dataset manifest or
    a model package whose own blob lists more."""

    direct: frozenset[str]
    manifests: frozenset[str]
    packages: frozenset[str]


class Role(StrEnum):
    """What a user of the team server may do; each role may do what the ones before it may."""

    READER = "reader"
    WRITER = "writer"
    MAINTAINER = "maintainer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    creation_time: int
    disabled: bool = False


@dataclass(frozen=True)
class Token:
    """An API token's record; the secret itself is shown once, when it is created."""

    token_id: str
    user: str
    label: str
    creation_time: int
    revoked_time: int | None
