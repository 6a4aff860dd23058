"""``ferry import mlflow SOURCE``: an MLflow tracking store's experiments, runs (status,
times, user, nesting, full metric histories, params, tags, artifacts, dataset inputs),
logged models and registry (models, versions, tags, aliases) into ferryml's stores.

Run ids and logged-model ids are kept, so importing again adds only what is new: a run
whose status and end time match is skipped, and one cut short is written again (every
write is idempotent). A run or model that cannot be read (a missing artifact) is reported
by name and skipped; the rest goes on. It ends with counts per kind and a check: the same
runs, with the same params and latest metric values, on both sides.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ferryml.config import Settings
from ferryml.errors import AlreadyExists, FerryError, InvalidArgument, NotFound
from ferryml.imports._mlflow_types import Source, SourceExperiment, SourceRun
from ferryml.store.artifacts import ArtifactStore, Blob
from ferryml.store.entities import RunStatus, ViewType
from ferryml.store.factory import open_artifact_store, open_sql_store
from ferryml.store.records import (
    ArtifactRecord,
    EndRecord,
    ParamRecord,
    Record,
    TagRecord,
    metric_record,
)
from ferryml.store.sql import SqlStore
from ferryml.store.sql_mlflow import SqlMlflowStore
from ferryml.store.sql_registry import SqlRegistryStore

__all__ = ["ImportReport", "import_mlflow", "open_source"]

Progress = Callable[[str, int, int], None]  # kind, done, total
_BATCH = 20_000  # metric values per transaction
_VERSION_TAG = "mlflow.import.version"  # the version's number in the source registry


@dataclass
class ImportReport:
    """What an import did: counts per kind, what it skipped and why, and the check."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    checked_runs: int = 0


def open_source(source: str) -> Source:
    """The MLflow store ``source`` names: a database URL (``sqlite:///mlflow.db``,
    ``postgresql://...``).

    Raises:
        InvalidArgument: ``source`` names nothing ferryml can read.
    """
    from ferryml.imports._mlflow_db import DbSource

    if source.startswith(("sqlite:", "postgresql:", "postgresql+", "mysql:")):
        return DbSource(source).open()
    raise InvalidArgument(
        f"Cannot import {source!r}: name an MLflow tracking database (sqlite:///mlflow.db or "
        "postgresql://...)."
    )


def import_mlflow(
    source: Source,
    settings: Settings,
    *,
    artifacts_root: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import everything ``source`` holds into the stores ``settings`` names (a database:
    run it on the team server's host)."""
    store = open_sql_store(settings)
    artifacts = open_artifact_store(settings)
    importer = _Importer(source, store, artifacts, artifacts_root, progress or _quiet)
    try:
        importer.run()
        return importer.report
    finally:
        store.close()


def _quiet(kind: str, done: int, total: int) -> None:
    return None


class _Importer:
    def __init__(
        self,
        source: Source,
        store: SqlStore,
        artifacts: ArtifactStore,
        artifacts_root: str | None,
        progress: Progress,
    ) -> None:
        self.source = source
        self.store = store
        self.mlflow = SqlMlflowStore(store)
        self.registry = SqlRegistryStore(store)
        self.artifacts = artifacts
        self.root = artifacts_root
        self.progress = progress
        self.report = ImportReport()
        self.experiments: dict[str, str] = {}  # source id -> ferryml id
        self.runs: list[SourceRun] = []

    def run(self) -> None:
        experiments = self.source.experiments()
        for experiment in experiments:
            self._experiment(experiment)
        for experiment in experiments:
            self.runs += list(self.source.runs(experiment.experiment_id))
        for done, run in enumerate(self.runs, 1):
            try:
                self._run(run)
            except (FerryError, OSError) as e:
                self.report.problems.append(f"run {run.run_id} ({run.name}): {e}")
            self.progress("runs", done, len(self.runs))
        for experiment in experiments:
            if experiment.lifecycle_stage == "deleted":
                ferry_id = self.experiments[experiment.experiment_id]
                self.store.update_experiment(ferry_id, lifecycle_stage="deleted")
        self._logged_models()
        self._registry()
        self._check()

    # -- tracking ------------------------------------------------------------------------

    def _experiment(self, experiment: SourceExperiment) -> None:
        found = self.store.get_experiment_by_name(experiment.name)
        if found is None:
            ferry_id = self.store.create_experiment(experiment.name, experiment.tags)
            self.report.counts["experiments"] += 1
        else:
            ferry_id = found.experiment_id
            if found.lifecycle_stage == "deleted":  # to take runs; deleted again at the end
                self.store.update_experiment(ferry_id, lifecycle_stage="active")
            for key, value in experiment.tags.items():
                self.mlflow.set_experiment_tag(ferry_id, key, value)
        self.experiments[experiment.experiment_id] = ferry_id

    def _run(self, run: SourceRun) -> None:
        status = RunStatus.RUNNING if run.status == "SCHEDULED" else RunStatus(run.status)
        try:
            existing = self.store.get_run_info(run.run_id)
        except NotFound:
            existing = None
        if (
            existing is not None
            and status.is_terminal
            and existing.status == status
            and existing.end_time == run.end_time
        ):
            self.report.counts["runs already imported"] += 1
            return
        if existing is None:
            parent = run.tags.get("mlflow.parentRunId") or None
            if parent is not None and not self._exists(parent):
                parent = None  # kept as the tag; its parent was not imported
            self.store.create_run(
                self.experiments[run.experiment_id],
                run_name=run.name[:250],
                start_time=run.start_time,
                user=run.user,
                description=run.tags.get("mlflow.note.content", ""),
                parent_run_id=parent,
                run_id=run.run_id,
            )
        history = self.source.history(run.run_id)
        metrics: list[Record] = [
            metric_record(run.run_id, key, math.nan if nan else value, timestamp, step)
            for key, value, timestamp, step, nan in history
        ]
        cut = (len(metrics) - 1) // _BATCH * _BATCH if metrics else 0
        for start in range(0, cut, _BATCH):  # a long history's first values go ahead
            self.store.write_records(metrics[start : start + _BATCH])
        records: list[Record] = [ParamRecord(run.run_id, k, v) for k, v in run.params.items()]
        records += [TagRecord(run.run_id, k, v) for k, v in run.tags.items()]
        records += self._artifacts(run)
        records += metrics[cut:]
        inputs = self.source.inputs(run.run_id)
        if inputs:
            self.mlflow.log_inputs(run.run_id, inputs)
        # The status last, in the same transaction as the rest: a run whose status and end
        # time match the source's was imported whole.
        end = run.end_time if status.is_terminal else None
        records.append(EndRecord(run.run_id, status.value, end, None))
        self.store.write_records(records)
        if run.lifecycle_stage == "deleted":
            self.store.update_run(run.run_id, lifecycle_stage="deleted")
        counts = self.report.counts
        counts["runs"] += 1
        counts["params"] += len(run.params)
        counts["tags"] += len(run.tags)
        counts["metric values"] += len(history)
        counts["dataset inputs"] += len(inputs)
        counts["artifacts"] += sum(isinstance(r, ArtifactRecord) for r in records)

    def _exists(self, run_id: str) -> bool:
        try:
            self.store.get_run_info(run_id)
            return True
        except NotFound:
            return False

    def _artifacts(self, run: SourceRun) -> list[Record]:
        return [
            ArtifactRecord(run.run_id, relative, blob.digest, blob.size)
            for relative, blob in self._files(run.artifact_uri, f"run {run.run_id}")
        ]

    def _files(self, uri: str, owner: str) -> Iterator[tuple[str, Blob]]:
        folder = self._local(uri, owner)
        if folder is None:
            return
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            yield path.relative_to(folder).as_posix(), self.artifacts.ingest_file(path)

    def _local(self, uri: str, owner: str) -> Path | None:
        """The local folder an artifact URI names; None (reported) when it is not local."""
        if not uri:
            return None
        if uri.startswith("mlflow-artifacts:"):
            if self.root is None:
                self.report.problems.append(
                    f"{owner}: artifacts at {uri} are on an MLflow server; pass "
                    "--artifacts-root (its --artifacts-destination folder) to import them"
                )
                return None
            relative = urlparse(uri).path.lstrip("/")
            return Path(self.root) / relative if (Path(self.root) / relative).is_dir() else None
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            self.report.problems.append(f"{owner}: artifacts at {uri} are not local; skipped")
            return None
        folder = Path(unquote(parsed.path))
        return folder if folder.is_dir() else None

    # -- logged models and the registry --------------------------------------------------

    def _logged_models(self) -> None:
        models = self.source.logged_models()
        for done, model in enumerate(models, 1):
            try:
                self.mlflow.get_logged_model(model.model_id)
                self.report.counts["logged models already imported"] += 1
                continue
            except NotFound:
                pass
            owner = f"logged model {model.model_id} ({model.name})"
            try:
                files = list(self._files(model.artifact_location, owner))
                if not files:
                    raise NotFound(f"no files at {model.artifact_location}")
                created = self.mlflow.create_logged_model(
                    self.experiments[model.experiment_id],
                    model.name,
                    source_run_id=self._known(model.source_run_id),
                    model_type=model.model_type,
                    tags=model.tags,
                    params=model.params,
                    status=model.status,
                    model_id=model.model_id,
                    creation_time=model.creation_time,
                )
                for relative, blob in files:
                    self.mlflow.add_model_file(created.model_id, relative, blob.digest, blob.size)
                self.report.counts["logged models"] += 1
            except (FerryError, OSError, KeyError) as e:
                self.report.problems.append(f"{owner}: {e}")
            self.progress("logged models", done, len(models))

    def _known(self, run_id: str | None) -> str | None:
        """``run_id`` if that run is in ferryml, else None."""
        return run_id if run_id is not None and self._exists(run_id) else None

    def _registry(self) -> None:
        from ferryml.registry.mlmodel import package_mlmodel

        for model in self.source.registered_models():
            try:
                self.mlflow.create_registered_model(
                    model.name, description=model.description, tags=model.tags
                )
                self.report.counts["registered models"] += 1
            except AlreadyExists:
                pass
            numbers: dict[int, int] = {}  # source version -> ferryml version
            have = {
                v.tags.get(_VERSION_TAG): v.version
                for v in self.registry.list_model_versions(model.name)
            }
            for version in model.versions:
                if str(version.version) in have:
                    numbers[version.version] = have[str(version.version)]
                    continue
                owner = f"model {model.name} version {version.version}"
                try:
                    found = self._version_files(version.source, version.storage_location, owner)
                    files = {path: (blob.digest, blob.size) for path, blob in found}
                    digest, meta = package_mlmodel(self.artifacts, files)
                except (FerryError, OSError) as e:
                    self.report.problems.append(f"{owner}: {e}")
                    continue
                created = self.registry.create_model_version(
                    model.name,
                    package_digest=digest,
                    flavor=meta.flavor,
                    source=version.source,
                    run_id=self._known(version.run_id),
                    user="mlflow-import",
                    signature=json.dumps(meta.signature) if meta.signature else None,
                    description=version.description,
                )
                numbers[version.version] = created.version
                tags = {**version.tags, _VERSION_TAG: str(version.version)}
                for tag, value in tags.items():
                    self.registry.set_tag(model.name, created.version, tag, value)
                self.report.counts["model versions"] += 1
            for alias, number in model.aliases.items():
                if number in numbers and self._alias(model.name, alias) != numbers[number]:
                    self.registry.set_alias(
                        model.name, alias, numbers[number], user="mlflow-import"
                    )
                    self.report.counts["aliases"] += 1

    def _alias(self, name: str, alias: str) -> int | None:
        try:
            return int(self.registry.resolve_alias(name, alias))
        except NotFound:
            return None

    def _version_files(self, source: str, storage: str, owner: str) -> Iterator[tuple[str, Blob]]:
        if source.startswith("models:/m-"):
            files = self.mlflow.list_model_files(source[len("models:/") :])
            if files:
                for path, digest, size in files:
                    yield path, Blob(digest, size)
                return
        yield from self._files(storage or source, owner)

    # -- the check -----------------------------------------------------------------------

    def _check(self) -> None:
        """The same runs, params and latest metric values on both sides."""
        by_experiment: dict[str, list[SourceRun]] = {}
        for run in self.runs:
            by_experiment.setdefault(run.experiment_id, []).append(run)
        for source_id, runs in by_experiment.items():
            ferry_id = self.experiments[source_id]
            found, offset = {}, 0
            while True:
                page, next_offset = self.store.search_runs(
                    [ferry_id], "", (), 50_000, offset, ViewType.ALL
                )
                found.update({r.run_id: r for r in page})
                if next_offset is None:
                    break
                offset = next_offset
            latest = self.mlflow.latest_metrics([r.run_id for r in runs])
            for run in runs:
                mine = found.get(run.run_id)
                if mine is None:
                    self.report.mismatches.append(f"run {run.run_id} is missing")
                    continue
                if dict(mine.data.params) != dict(run.params):
                    self.report.mismatches.append(f"run {run.run_id}: params differ")
                expected = _latest(self.source.history(run.run_id))
                got = {m.key: m.value for m in latest.get(run.run_id, [])}
                if not _same(expected, got):
                    self.report.mismatches.append(f"run {run.run_id}: metrics differ")
                self.report.checked_runs += 1


def _latest(history: list[tuple[str, float, int, int, bool]]) -> dict[str, float]:
    best: dict[str, tuple[int, int, float]] = {}
    for key, value, timestamp, step, nan in history:
        current = best.get(key)
        if current is None or (step, timestamp) >= current[:2]:
            best[key] = (step, timestamp, math.nan if nan else value)
    return {k: v[2] for k, v in best.items()}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )
