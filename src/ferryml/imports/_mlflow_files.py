"""Reading MLflow's file store, an ``mlruns/`` folder: each experiment a folder with a
``meta.yaml``, each run a folder of ``meta.yaml``, ``params/``, ``tags/``, ``metrics/``
(a line "timestamp value step" per value), ``inputs/`` and ``artifacts/``; logged models
under ``<experiment>/models/``, deleted experiments under ``.trash/``, the registry under
``models/``. Read as files, so MLflow need not be installed."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ferryml.errors import InvalidArgument, NotFound
from ferryml.imports._mlflow_types import (
    MODEL_STATUS,
    MetricRow,
    SourceLoggedModel,
    SourceModel,
    SourceRun,
    SourceVersion,
    latest_values,
    local_files,
    run_status,
)
from ferryml.store.entities import Experiment, RegisteredModel, Run, RunData, RunInfo
from ferryml.store.sql_mlflow import DatasetInput, LoggedModel

__all__ = ["FileSource"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# MLflow writes the run status enum's number into meta.yaml.
_RUN_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_NOT_RUNS = {"tags", "datasets", "traces", "models"}  # an experiment's other folders


class FileSource:
    """An MLflow ``mlruns/`` folder, read only."""

    def __init__(self, root: Path, artifacts_root: str | None = None) -> None:
        self.root = root
        self.artifacts_root = artifacts_root
        self.problems: list[str] = []
        self._experiments: dict[str, Path] = {}  # experiment id -> its folder
        self._locations: dict[str, Path] = {}  # an experiment's artifact location -> its folder
        self._runs: dict[str, Path] = {}  # run id -> its folder

    def open(self) -> FileSource:
        if not self.root.is_dir():
            raise NotFound(
                f"No MLflow store at {self.root}: name an mlruns/ folder, an MLflow database "
                "(sqlite:///mlflow.db) or an MLflow server's URL."
            )
        if not any(self.root.glob("*/meta.yaml")) and not (self.root / "models").is_dir():
            raise InvalidArgument(
                f"{self.root} holds no experiment (no <id>/meta.yaml): name the mlruns/ folder "
                "MLflow's file store wrote."
            )
        return self

    def close(self) -> None:
        return None

    def _meta(self, folder: Path, what: str) -> dict[str, Any] | None:
        """A folder's meta.yaml as a mapping; None (reported) when missing or not YAML."""
        path = folder / "meta.yaml"
        try:
            meta = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.problems.append(f"{what} {folder.name}: {path} cannot be read ({reason})")
            return None
        if not isinstance(meta, dict):
            self.problems.append(f"{what} {folder.name}: {path} is not a YAML mapping")
            return None
        return meta

    # -- tracking ------------------------------------------------------------------------

    def experiments(self) -> list[Experiment]:
        found = []
        folders = [(p, "active") for p in sorted(self.root.iterdir())]
        trash = self.root / ".trash"
        if trash.is_dir():
            folders += [(p, "deleted") for p in sorted(trash.iterdir())]
        for folder, stage in folders:
            if not folder.is_dir() or folder.name in (".trash", "models"):
                continue
            meta = self._meta(folder, "experiment")
            if meta is None:
                continue
            experiment_id = str(meta.get("experiment_id", folder.name))
            tags = {**_strings(meta.get("tags")), **_values(folder / "tags")}
            created = int(meta.get("creation_time") or 0)
            found.append(
                Experiment(
                    experiment_id,
                    str(meta.get("name") or experiment_id),
                    str(meta.get("lifecycle_stage") or stage),
                    created,
                    int(meta.get("last_update_time") or created),
                    tags,
                )
            )
            self._experiments[experiment_id] = folder
            location = str(meta.get("artifact_location") or "").rstrip("/")
            if location.endswith("/" + folder.name):  # MLflow's default: <root>/<id>
                self._locations[location] = folder
        return found

    def runs(self, experiment_id: str) -> Iterator[SourceRun]:
        folder = self._experiments[experiment_id]
        for run_folder in sorted(folder.iterdir()):
            if not run_folder.is_dir() or run_folder.name in _NOT_RUNS:
                continue
            meta = self._meta(run_folder, "run")
            if meta is None:
                continue
            run_id = str(meta.get("run_id") or meta.get("run_uuid") or run_folder.name)
            tags = _values(run_folder / "tags")
            status = meta.get("status", 1)
            info = RunInfo(
                run_id,
                experiment_id,
                str(meta.get("run_name") or tags.get("mlflow.runName") or run_id[:8]),
                run_status(_RUN_STATUS.get(status, str(status))),
                int(meta.get("start_time") or 0),
                None if meta.get("end_time") is None else int(meta["end_time"]),
                str(meta.get("lifecycle_stage") or "active"),
                tags.get("mlflow.parentRunId") or None,
                str(meta.get("user_id") or ""),
                tags.get("mlflow.note.content", ""),
                None,
            )
            self._runs[run_id] = run_folder
            data = RunData(_values(run_folder / "params"), {}, tags)
            yield SourceRun(Run(info, data), str(meta.get("artifact_uri") or ""))

    def history(self, run_id: str) -> Sequence[MetricRow]:
        metrics = self._runs[run_id] / "metrics"
        rows: list[MetricRow] = []
        for key, path in _files(metrics):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    timestamp, value = int(parts[0]), float(parts[1])
                    step = int(parts[2]) if len(parts) > 2 else 0
                except (ValueError, IndexError) as e:
                    raise InvalidArgument(
                        f"metric {key}: line {number} of {path} ({line[:60]!r}) is not "
                        "'timestamp value step'"
                    ) from e
                if math.isnan(value):
                    rows.append((run_id, key, step, timestamp, 0.0, True))
                else:
                    rows.append((run_id, key, step, timestamp, value, False))
        return list(dict.fromkeys(rows))  # log_model appends a run's values again

    def latest(self, run_id: str) -> dict[str, float]:
        return latest_values(self.history(run_id))

    def inputs(self, run_id: str) -> list[DatasetInput]:
        run_folder = self._runs[run_id]
        found = []
        for folder in sorted((run_folder / "inputs").glob("*")):
            meta = self._meta(folder, f"run {run_id} input")
            if meta is None or meta.get("source_type") != "DATASET":
                continue
            dataset_folder = run_folder.parent / "datasets" / str(meta.get("source_id"))
            dataset = self._meta(dataset_folder, f"run {run_id} dataset")
            if dataset is None:
                continue
            found.append(
                DatasetInput(
                    str(dataset.get("name") or ""),
                    str(dataset.get("digest") or ""),
                    str(dataset.get("source_type") or ""),
                    str(dataset.get("source") or ""),
                    str(dataset.get("schema") or ""),
                    str(dataset.get("profile") or ""),
                    _strings(meta.get("tags")),
                )
            )
        return found

    def logged_models(self) -> list[SourceLoggedModel]:
        found = []
        for experiment_id, folder in self._experiments.items():
            for model_folder in sorted((folder / "models").glob("*")):
                meta = self._meta(model_folder, "logged model")
                if meta is None or meta.get("lifecycle_stage", "active") != "active":
                    continue
                status = meta.get("status", 2)
                created = int(meta.get("creation_timestamp") or 0)
                model = LoggedModel(
                    str(meta.get("model_id") or model_folder.name),
                    experiment_id,
                    str(meta.get("name") or ""),
                    meta.get("source_run_id"),
                    MODEL_STATUS.get(status, str(status)),
                    str(meta.get("model_type") or ""),
                    created,
                    int(meta.get("last_updated_timestamp") or created),
                    _values(model_folder / "tags"),
                    _values(model_folder / "params"),
                )
                found.append(SourceLoggedModel(model, str(meta.get("artifact_location") or "")))
        return sorted(found, key=lambda m: m.model.creation_time)

    # -- registry ------------------------------------------------------------------------

    def registered_models(self) -> list[SourceModel]:
        found = []
        for folder in sorted((self.root / "models").glob("*")):
            meta = self._meta(folder, "registered model")
            if meta is None:
                continue
            versions = []
            for version_folder in sorted(folder.glob("version-*")):
                v = self._meta(version_folder, f"model {folder.name} version")
                if v is None or v.get("current_stage") == "Deleted_Internal":
                    continue
                versions.append(
                    SourceVersion(
                        int(v.get("version") or version_folder.name.split("-")[-1]),
                        str(v.get("source") or ""),
                        v.get("run_id"),
                        str(v.get("description") or ""),
                        int(v.get("creation_timestamp") or 0),
                        str(v.get("storage_location") or ""),
                        _values(version_folder / "tags"),
                    )
                )
            aliases = {**_strings(meta.get("aliases")), **_values(folder / "aliases")}
            created = int(meta.get("creation_timestamp") or 0)
            model = RegisteredModel(
                str(meta.get("name") or folder.name),
                str(meta.get("description") or ""),
                created,
                int(meta.get("last_updated_timestamp") or created),
                {alias: int(v) for alias, v in aliases.items() if str(v).strip().isdigit()},
                _values(folder / "tags"),
            )
            found.append(SourceModel(model, sorted(versions, key=lambda v: v.version)))
        return found

    def files(self, uri: str) -> Iterator[tuple[str, Path]]:
        # An experiment's default artifact location is its folder: read the files there,
        # also when the folder was copied or moved since MLflow wrote it (the URIs name
        # the old place).
        for location, folder in self._locations.items():
            if uri.startswith(location + "/"):
                return local_files(str(folder) + uri[len(location) :], self.artifacts_root)
        return local_files(uri, self.artifacts_root)


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(key, file) under a params/, tags/ or metrics/ folder: a key with '/' is nested."""
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            yield path.relative_to(folder).as_posix(), path


def _values(folder: Path) -> dict[str, str]:
    return {key: path.read_text(encoding="utf-8") for key, path in _files(folder)}


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}
