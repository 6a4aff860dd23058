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

import contextlib
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ferryml.config import Settings
from ferryml.errors import AlreadyExists, FerryError, InvalidArgument, NotFound
from ferryml.imports._mlflow_db import DbSource
from ferryml.imports._mlflow_types import (
    MetricRow,
    Source,
    SourceRun,
    SourceVersion,
    latest_values,
)
from ferryml.store.artifacts import ArtifactStore, Blob
from ferryml.store.entities import Experiment, RunInfo, ViewType
from ferryml.store.factory import open_artifact_store, open_sql_store
from ferryml.store.records import (
    ArtifactRecord,
    EndRecord,
    ParamRecord,
    Record,
    TagRecord,
)
from ferryml.store.sql import Copier, SqlStore
from ferryml.store.sql_mlflow import SqlMlflowStore
from ferryml.store.sql_registry import SqlRegistryStore

__all__ = ["ImportReport", "import_mlflow", "open_source"]

Progress = Callable[[str, int, int], None]  # kind, done, total
_BATCH = 50_000  # metric values per transaction
_VERSION_TAG = "mlflow.import.version"  # the version's number in the source registry


@dataclass
class ImportReport:
    """What an import did: counts per kind, what it skipped and why, and the check."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    checked_runs: int = 0


def open_source(source: str, *, artifacts_root: str | None = None) -> Source:
    """The MLflow store ``source`` names, opened: an ``mlruns/`` folder (MLflow's file
    store), a database URL (``sqlite:///mlflow.db``, ``postgresql://...``) or a running
    ``mlflow server``'s URL (``http://host:5000``). ``artifacts_root`` is the folder an MLflow
    server keeps proxied artifacts in, for ``mlflow-artifacts:`` URIs read from a folder or a
    database.

    Raises:
        InvalidArgument: ``source`` names nothing ferryml can read.
        NotFound: the folder does not exist.
        StoreUnavailable: the database or server cannot be reached.
    """
    from ferryml.imports._mlflow_files import FileSource
    from ferryml.imports._mlflow_rest import RestSource

    if source.startswith(("sqlite:", "postgresql:", "postgresql+", "mysql:")):
        return DbSource(source, artifacts_root).open()
    if source.startswith(("http://", "https://")):
        return RestSource(source, artifacts_root).open()
    if source.startswith("file:"):
        return FileSource(Path(unquote(urlparse(source).path)), artifacts_root).open()
    if "://" not in source:
        return FileSource(Path(source), artifacts_root).open()
    raise InvalidArgument(
        f"Cannot import {source!r}: name an mlruns/ folder, an MLflow tracking database "
        "(sqlite:///mlflow.db or postgresql://...) or an MLflow server (http://host:5000)."
    )


def import_mlflow(
    source: Source,
    settings: Settings,
    *,
    progress: Progress | None = None,
) -> ImportReport:
    """Import everything ``source`` holds into the stores ``settings`` names (a database:
    run it on the team server's host)."""
    store = open_sql_store(settings)
    artifacts = open_artifact_store(settings)
    importer = _Importer(source, store, artifacts, progress or _quiet)
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
        progress: Progress,
    ) -> None:
        self.source = source
        self.store = store
        self.mlflow = SqlMlflowStore(store)
        self.registry = SqlRegistryStore(store)
        self.artifacts = artifacts
        self.progress = progress
        self.report = ImportReport()
        self.experiments: dict[str, str] = {}  # source id -> ferryml id
        self.runs: list[SourceRun] = []
        self.latest: dict[str, dict[str, float]] = {}  # run id -> latest value per key
        self.failed: set[str] = set()  # runs reported and not imported: left out of the check
        self.copy_from = _sqlite_file(source) if store.dialect == "sqlite" else None
        self.copy: Copier | None = None  # while runs are imported from copy_from

    def run(self) -> None:
        experiments = self.source.experiments()
        for experiment in experiments:
            self._experiment(experiment)
        for experiment in experiments:
            self.runs += list(self.source.runs(experiment.experiment_id))
        self._problems()
        self.runs.sort(key=lambda r: r.run.info.start_time)  # parents before their children
        self._runs()
        for experiment in experiments:
            if experiment.lifecycle_stage == "deleted":
                ferry_id = self.experiments[experiment.experiment_id]
                self.store.update_experiment(ferry_id, lifecycle_stage="deleted")
        self._logged_models()
        self._registry()
        self._problems()
        self._check()

    def _problems(self) -> None:
        """What the source could not read, reported once."""
        self.report.problems += self.source.problems
        self.source.problems.clear()

    # -- tracking ------------------------------------------------------------------------

    def _experiment(self, experiment: Experiment) -> None:
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

    def _runs(self) -> None:
        """Every run not yet imported whole. From an SQLite file into an SQLite store, SQLite
        copies the histories itself. Otherwise the next run's history is read on a thread
        while the one before is written: both are mostly the databases' work, which lets
        go of the GIL, so they overlap on two cores."""
        todo: list[tuple[SourceRun, RunInfo | None]] = []
        for run in self.runs:
            info = run.run.info
            try:
                existing: RunInfo | None = self.store.get_run_info(info.run_id)
            except NotFound:
                existing = None
            if (
                existing is not None
                and info.status.is_terminal
                and existing.status == info.status
                and existing.end_time == info.end_time
            ):
                self.report.counts["runs already imported"] += 1
            else:
                todo.append((run, existing))
        done = len(self.runs) - len(todo)
        history = self.source.history if self.copy_from is None else _nothing
        with contextlib.ExitStack() as stack:
            if self.copy_from is not None:
                copier = self.store.sqlite_copier(self.copy_from, DbSource.history_sql)
                self.copy = stack.enter_context(copier)
                stack.callback(setattr, self, "copy", None)
            reader = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="ferry-read"))
            ahead = [reader.submit(history, run.run.run_id) for run, _ in todo[:1]]
            for n, (run, existing) in enumerate(todo):
                if n + 1 < len(todo):
                    ahead.append(reader.submit(history, todo[n + 1][0].run.run_id))
                try:
                    self._run(run, existing, ahead.pop(0).result())
                except (FerryError, OSError) as e:
                    info = run.run.info
                    self.report.problems.append(f"run {info.run_id} ({info.run_name}): {e}")
                    self.failed.add(info.run_id)
                self.progress("runs", done + n + 1, len(self.runs))

    def _run(
        self,
        source_run: SourceRun,
        existing: RunInfo | None,
        history: Sequence[MetricRow],
    ) -> None:
        info, data = source_run.run.info, source_run.run.data
        artifacts = self._artifacts(source_run)  # read before anything is written
        inputs = self.source.inputs(info.run_id)
        if existing is None:
            parent = info.parent_run_id
            if parent is not None and not self._exists(parent):
                parent = None  # kept as the tag; its parent was not imported
            self.store.create_run(
                self.experiments[info.experiment_id],
                run_name=info.run_name[:250],
                start_time=info.start_time,
                user=info.user,
                description=info.description,
                parent_run_id=parent,
                run_id=info.run_id,
            )
        values = len(history)  # the metrics ahead of the status
        if self.copy is not None:
            values = self.copy(info.run_id)
        for start in range(0, len(history), _BATCH):
            self.store.write_metric_rows(info.run_id, history[start : start + _BATCH])
        records: list[Record] = [ParamRecord(info.run_id, k, v) for k, v in data.params.items()]
        records += [TagRecord(info.run_id, k, v) for k, v in data.tags.items()]
        records += artifacts
        if inputs:
            self.mlflow.log_inputs(info.run_id, inputs)
        # The status last, in the same transaction as the rest: a run whose status and end
        # time match the source's was imported whole.
        end = info.end_time if info.status.is_terminal else None
        records.append(EndRecord(info.run_id, info.status.value, end, None))
        self.store.write_records(records)
        if info.lifecycle_stage == "deleted":
            self.store.update_run(info.run_id, lifecycle_stage="deleted")
        if self.copy_from is None:
            self.latest[info.run_id] = latest_values(history)
        counts = self.report.counts
        counts["runs"] += 1
        counts["params"] += len(data.params)
        counts["tags"] += len(data.tags)
        counts["metric values"] += values
        counts["dataset inputs"] += len(inputs)
        counts["artifacts"] += len(artifacts)

    def _exists(self, run_id: str) -> bool:
        try:
            self.store.get_run_info(run_id)
            return True
        except NotFound:
            return False

    def _artifacts(self, run: SourceRun) -> list[Record]:
        return [
            ArtifactRecord(run.run.run_id, relative, blob.digest, blob.size)
            for relative, blob in self._files(run.artifact_uri, f"run {run.run.run_id}")
        ]

    def _files(self, uri: str, owner: str) -> list[tuple[str, Blob]]:
        """The files under ``uri``, stored; none (reported) when they are out of reach."""
        try:
            return [
                (path, self.artifacts.ingest_file(copy)) for path, copy in self.source.files(uri)
            ]
        except InvalidArgument as e:
            self.report.problems.append(f"{owner}: {e}")
            return []

    # -- logged models and the registry --------------------------------------------------

    def _logged_models(self) -> None:
        models = self.source.logged_models()
        for done, found in enumerate(models, 1):
            model = found.model
            try:
                self.mlflow.get_logged_model(model.model_id)
                self.report.counts["logged models already imported"] += 1
                continue
            except NotFound:
                pass
            owner = f"logged model {model.model_id} ({model.name})"
            try:
                files = self._files(found.artifact_location, owner)
                if not files:
                    raise NotFound(f"no files at {found.artifact_location}")
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
        for found in self.source.registered_models():
            model = found.model
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
            for version in found.versions:
                if str(version.version) in have:
                    numbers[version.version] = have[str(version.version)]
                else:
                    created = self._version(model.name, version)
                    if created is not None:
                        numbers[version.version] = created
            for alias, number in model.aliases.items():
                if number in numbers and self._alias(model.name, alias) != numbers[number]:
                    self.registry.set_alias(
                        model.name, alias, numbers[number], user="mlflow-import"
                    )
                    self.report.counts["aliases"] += 1

    def _version(self, name: str, version: SourceVersion) -> int | None:
        """The ferryml version made of ``version``; None (reported) when its files fail."""
        from ferryml.registry.mlmodel import package_mlmodel

        owner = f"model {name} version {version.version}"
        try:
            found = self._version_files(version, owner)
            files = {path: (blob.digest, blob.size) for path, blob in found}
            digest, meta = package_mlmodel(self.artifacts, files)
        except (FerryError, OSError) as e:
            self.report.problems.append(f"{owner}: {e}")
            return None
        created = self.registry.create_model_version(
            name,
            package_digest=digest,
            flavor=meta.flavor,
            source=version.source,
            run_id=self._known(version.run_id),
            user="mlflow-import",
            signature=json.dumps(meta.signature) if meta.signature else None,
            description=version.description,
        )
        tags = {**version.tags, _VERSION_TAG: str(version.version)}
        for tag, value in tags.items():
            self.registry.set_tag(name, created.version, tag, value)
        self.report.counts["model versions"] += 1
        return created.version

    def _alias(self, name: str, alias: str) -> int | None:
        try:
            return int(self.registry.resolve_alias(name, alias))
        except NotFound:
            return None

    def _version_files(self, version: SourceVersion, owner: str) -> list[tuple[str, Blob]]:
        """A version's files: its logged model's or its run's, when imported; else read."""
        source = version.source
        if source.startswith("models:/m-"):
            stored = self.mlflow.list_model_files(source[len("models:/") :])
            if stored:
                return [(path, Blob(digest, size)) for path, digest, size in stored]
        if source.startswith("runs:/"):
            run_id, _, prefix = source[len("runs:/") :].partition("/")
            if self._exists(run_id):
                folder = prefix.strip("/") + "/"
                files = [
                    (a.path[len(folder) :], Blob(a.digest, a.size))
                    for a in self.store.list_artifacts(run_id)
                    if a.path.startswith(folder)
                ]
                if files:
                    return files
        return self._files(version.storage_location or source, owner)

    # -- the check -----------------------------------------------------------------------

    def _check(self) -> None:
        """The same runs, params and latest metric values on both sides."""
        by_experiment: dict[str, list[SourceRun]] = {}
        for run in self.runs:
            if run.run.run_id not in self.failed:
                by_experiment.setdefault(run.run.info.experiment_id, []).append(run)
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
            latest = self.mlflow.latest_metrics([r.run.run_id for r in runs])
            for source_run in runs:
                run_id = source_run.run.run_id
                mine = found.get(run_id)
                if mine is None:
                    self.report.mismatches.append(f"run {run_id} is missing")
                    continue
                if dict(mine.data.params) != dict(source_run.run.data.params):
                    self.report.mismatches.append(f"run {run_id}: params differ")
                expected = self.latest.get(run_id)
                if expected is None:  # imported before, or copied by SQLite
                    expected = self.source.latest(run_id)
                got = {m.key: m.value for m in latest.get(run_id, [])}
                if not _same(expected, got):
                    self.report.mismatches.append(f"run {run_id}: metrics differ")
                self.report.checked_runs += 1


def _sqlite_file(source: Source) -> str | None:
    return source.sqlite_file if isinstance(source, DbSource) else None


def _nothing(run_id: str) -> Sequence[MetricRow]:
    return ()


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )
