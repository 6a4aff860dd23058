"""The store interfaces. Client code depends on these, never on an implementation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ferryml.store.entities import (
    ArtifactEntry,
    BlobReferences,
    CachedOutput,
    DatasetVersion,
    Experiment,
    Metric,
    Run,
    RunInfo,
    Schedule,
    ViewType,
)
from ferryml.store.records import Record

__all__ = ["DatasetStore", "ReferenceStore", "ScheduleStore", "StepCache", "TrackingStore"]


class TrackingStore(Protocol):
    """Experiments and runs, with their params, metrics, tags, artifacts and inputs."""

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str: ...

    def get_experiment(self, experiment_id: str) -> Experiment: ...

    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    def list_experiments(self, view_type: ViewType = ViewType.ACTIVE_ONLY) -> list[Experiment]: ...

    def update_experiment(self, experiment_id: str, *, lifecycle_stage: str) -> Experiment:
        """Mark an experiment ``deleted`` or ``active`` again, with its runs (as MLflow
        does)."""
        ...

    def delete_experiment(self, experiment_id: str) -> None:
        """Remove an experiment marked deleted, and its runs, for good."""
        ...

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        start_time: int,
        user: str,
        description: str = "",
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RunInfo: ...

    def get_run(self, run_id: str) -> Run: ...

    def get_run_info(self, run_id: str) -> RunInfo: ...

    def get_params(self, run_id: str) -> dict[str, str]: ...

    def update_run(self, run_id: str, *, lifecycle_stage: str) -> RunInfo:
        """Mark a run ``deleted`` (hidden from searches) or ``active`` again."""
        ...

    def delete_run(self, run_id: str) -> None:
        """Remove a run marked deleted, with everything logged to it, for good."""
        ...

    def write_records(self, records: Sequence[Record]) -> None: ...

    def mark_killed(self, run_ids: Iterable[str]) -> None: ...

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]: ...

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = "",
        order_by: Sequence[str] | None = (),
        max_results: int = 1000,
        offset: int = 0,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
    ) -> tuple[list[Run], int | None]: ...

    def close(self) -> None: ...


class DatasetStore(Protocol):
    """Named datasets and their numbered, content-addressed versions."""

    def create_dataset_version(
        self,
        name: str,
        *,
        kind: str,
        manifest_digest: str,
        files: int,
        size: int,
        source: str = "",
        rows: int | None = None,
        schema: str | None = None,
        profile_digest: str | None = None,
        run_id: str | None = None,
    ) -> DatasetVersion: ...

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion: ...

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]: ...

    def list_datasets(self) -> list[DatasetVersion]: ...

    def delete_dataset_version(self, name: str, version: int) -> None:
        """Delete a version for good; its number is never given to other data."""
        ...

    def close(self) -> None: ...


class StepCache(Protocol):
    """Pipeline steps' outputs by cache key (hash of the step's code, inputs and params)."""

    def get(self, cache_key: str) -> CachedOutput | None: ...

    def put(self, cache_key: str, step: str, digest: str, fmt: str, run_id: str | None) -> None:
        """Record (or replace) the output stored for ``cache_key``."""
        ...

    def close(self) -> None: ...


class ScheduleStore(Protocol):
    """Pipeline schedules. The store knows no cron: callers compute the times, and
    ``claim`` is a compare-and-set on ``next_run_time``, so each occurrence goes to one
    scheduler however many share the store."""

    def create_schedule(
        self,
        name: str,
        *,
        target: str,
        cron: str,
        params: Mapping[str, str],
        next_run_time: int,
        creation_time: int,
    ) -> Schedule:
        """Raises AlreadyExists for a name in use."""
        ...

    def get_schedule(self, name: str) -> Schedule: ...

    def list_schedules(self) -> list[Schedule]: ...

    def delete_schedule(self, name: str) -> None: ...

    def list_due(self, now_ms: int) -> list[Schedule]:
        """Schedules whose ``next_run_time`` is at or before ``now_ms``, earliest first."""
        ...

    def claim(self, name: str, *, due: int, next_run_time: int, now_ms: int) -> Schedule | None:
        """Move ``name`` from the occurrence ``due`` to ``next_run_time``, marked RUNNING
        since ``now_ms``; None when another caller claimed ``due`` first."""
        ...

    def record_result(
        self, name: str, run_id: str | None, status: str, *, run_time: int | None = None
    ) -> bool: ...

    def close(self) -> None: ...


class ReferenceStore(Protocol):
    """What the metadata refers to in the artifact store, for ``ferry gc``."""

    def list_blob_references(self, *, deleted_runs: bool = True) -> BlobReferences:
        """Every blob a run, dataset version, model version, step output, prediction log
        or decision refers to; with ``deleted_runs=False``, not counting runs marked
        deleted."""
        ...
