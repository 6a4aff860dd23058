"""``FerryClient``: the tracking API addressed by run id, shaped like MLflow's client."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.store.base import TrackingStore
from ferryml.store.entities import (
    ArtifactEntry,
    Experiment,
    Metric,
    Run,
    RunStatus,
    ViewType,
)
from ferryml.store.factory import open_artifact_store, open_tracking_store
from ferryml.store.records import (
    ArtifactRecord,
    EndRecord,
    InputRecord,
    Record,
    StartRecord,
)
from ferryml.tracking import _validation as check
from ferryml.tracking._batch import (
    dict_text,
    figure_bytes,
    metric_records,
    param_records,
    tag_records,
)

if TYPE_CHECKING:
    from ferryml.store.artifacts import ArtifactStore
    from ferryml.tracking._journal import Journal

__all__ = ["FerryClient", "Param", "RunTag", "SearchPage"]


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True)
class SearchPage:
    """One page of search results; pass ``token`` back as ``page_token`` for the next."""

    runs: list[Run]
    token: str | None


@dataclass
class _RunState:
    params: dict[str, str]
    ended: bool


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FerryClient:
    """Tracking operations on explicit run ids. Opens the stores on first use.

    Example:
        >>> client = FerryClient()
        >>> run = client.create_run(client.create_experiment("churn"))
        >>> client.log_metric(run.info.run_id, "auc", 0.91)
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._store: TrackingStore | None = None
        self._artifacts: ArtifactStore | None = None
        self._journal: Journal | None = None
        self._runs: dict[str, _RunState] = {}

    # -- plumbing ----------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.resolve()
        return self._settings

    @property
    def store(self) -> TrackingStore:
        if self._store is None:
            from ferryml.tracking._journal import Journal

            store = open_tracking_store(self.settings)
            self._journal = Journal(self.settings.journal_dir, store).open()
            self._store = store
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings)
        return self._artifacts

    def flush(self) -> None:
        """Write every value logged so far to the store."""
        if self._journal is not None:
            self._journal.flush()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._artifacts is not None:
            self._artifacts.close()  # a team server's connections
            self._artifacts = None

    def _run_state(self, run_id: str) -> _RunState:
        state = self._runs.get(run_id)
        if state is None:
            check.check_run_id(run_id)
            info = self.store.get_run_info(run_id)
            if info.lifecycle_stage != "active":
                raise NotFound(f"Run {run_id!r} was deleted; values cannot be logged to it.")
            self.flush()
            state = _RunState(self.store.get_params(run_id), info.status.is_terminal)
            self._runs[run_id] = state
        return state

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self.store  # noqa: B018 - opening the store opens its journal
        assert self._journal is not None
        return self._journal

    def _append(self, records: Sequence[Record]) -> None:
        self.journal.append(records)

    # -- experiments -------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """Create an experiment and return its id.

        Raises:
            AlreadyExists: an experiment with this name exists.
            InvalidArgument: the name is empty or too long.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise InvalidArgument(f"Experiment name {name!r} is invalid: use 1 to 256 characters.")
        clean = {
            check.check_key(k, "tag"): check.check_value(k, v, "Tag", check.MAX_TAG_VALUE)
            for k, v in (tags or {}).items()
        }
        return str(self.store.create_experiment(name, clean))

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def list_experiments(
        self, view_type: ViewType | str = ViewType.ACTIVE_ONLY
    ) -> list[Experiment]:
        """Experiments, the active ones unless ``view_type`` says otherwise."""
        return self.store.list_experiments(_view(view_type))

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark an experiment and its runs deleted: hidden from lists and searches, kept
        until ``ferry gc`` removes them, restored by ``restore_experiment``.

        Raises:
            NotFound: no experiment has this id.
        """
        self.flush()
        self.store.update_experiment(experiment_id, lifecycle_stage="deleted")
        self._runs.clear()

    def restore_experiment(self, experiment_id: str) -> None:
        """Make a deleted experiment and its runs active again.

        Raises:
            NotFound: no experiment has this id (or ``ferry gc`` removed it).
        """
        self.store.update_experiment(experiment_id, lifecycle_stage="active")

    # -- runs --------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str = "",
        parent_run_id: str | None = None,
        capture_environment: bool = True,
    ) -> Run:
        """Start a run in an experiment; it is RUNNING until ``set_terminated``."""
        from ferryml.tracking._names import random_name

        name = run_name or random_name()
        check.check_value("run_name", name, "Run name", check.MAX_KEY)
        clean_tags = {
            check.check_key(k, "tag"): check.check_value(k, v, "Tag", check.MAX_TAG_VALUE)
            for k, v in (tags or {}).items()
        }
        environment = None
        if capture_environment:
            from ferryml.tracking._environment import capture

            environment = capture(Path.cwd())
            clean_tags = {**environment.tags, **clean_tags}
        info = self.store.create_run(
            experiment_id,
            run_name=name,
            start_time=_now_ms(),
            user=clean_tags.get("ferry.user", ""),
            description=description,
            parent_run_id=parent_run_id,
            tags=clean_tags,
        )
        self._runs[info.run_id] = _RunState({}, False)
        self._append([StartRecord(info.run_id)])
        if environment is not None:
            from ferryml.tracking._environment import PACKAGES_ARTIFACT

            self.log_bytes(info.run_id, environment.packages.encode(), PACKAGES_ARTIFACT)
        return self.get_run(info.run_id)

    def set_terminated(
        self,
        run_id: str,
        status: str | RunStatus = RunStatus.FINISHED,
        end_time: int | None = None,
        failure: str | None = None,
    ) -> None:
        """End a run as FINISHED, FAILED or KILLED, and write everything it logged."""
        try:
            final = RunStatus(status)
        except ValueError as e:
            raise InvalidArgument(
                f"Run status {status!r} is not one of FINISHED, FAILED, KILLED."
            ) from e
        if final is RunStatus.RUNNING:
            raise InvalidArgument(
                "A run cannot be ended as RUNNING; use FINISHED, FAILED or KILLED."
            )
        state = self._run_state(run_id)
        self._append([EndRecord(run_id, final.value, end_time or _now_ms(), failure)])
        state.ended = True
        self.flush()

    def resume_run(self, run_id: str) -> None:
        """Mark an ended run RUNNING again, to log more to it."""
        state = self._run_state(run_id)
        self._append([EndRecord(run_id, RunStatus.RUNNING.value, None, None), StartRecord(run_id)])
        state.ended = False
        self.flush()

    def get_run(self, run_id: str) -> Run:
        check.check_run_id(run_id)
        self.flush()
        return self.store.get_run(run_id)

    def delete_run(self, run_id: str) -> list[str]:
        """Mark a run and its child runs (a sweep's trials, a pipeline's steps) deleted:
        hidden from searches, kept until ``ferry gc`` removes them, restored by
        ``restore_run``. Returns the ids of the child runs deleted with it.

        Raises:
            NotFound: no run has this id.
        """
        check.check_run_id(run_id)
        self.flush()
        self.store.update_run(run_id, lifecycle_stage="deleted")
        children = self._descendants(run_id)
        for child in children:
            self.store.update_run(child, lifecycle_stage="deleted")
        for gone in (run_id, *children):
            self._runs.pop(gone, None)
        return children

    def restore_run(self, run_id: str) -> list[str]:
        """Make a deleted run and its child runs active again; returns the ids of the
        child runs restored with it.

        Raises:
            NotFound: no run has this id (or ``ferry gc`` removed it).
            Conflict: its experiment is deleted; restore that instead.
        """
        check.check_run_id(run_id)
        self.store.update_run(run_id, lifecycle_stage="active")
        children = self._descendants(run_id)
        for child in children:
            self.store.update_run(child, lifecycle_stage="active")
        return children

    def _descendants(self, run_id: str) -> list[str]:
        experiments = [e.experiment_id for e in self.store.list_experiments(ViewType.ALL)]
        found: list[str] = []
        frontier = [run_id]
        while frontier:
            quoted = ", ".join(f"'{r}'" for r in frontier)  # ids are checked hex
            children, _ = self.store.search_runs(
                experiments,
                f"parent_run_id IN ({quoted})",
                max_results=50_000,
                run_view_type=ViewType.ALL,
            )
            frontier = [c.run_id for c in children if c.run_id not in found]
            found += frontier
        return found

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged value of metric ``key`` of a run, by step then time.

        Raises:
            NotFound: no run has this id, or the run never logged ``key``.
        """
        check.check_run_id(run_id)
        self.flush()
        history = self.store.get_metric_history(run_id, key)
        if not history:  # as for an unknown run: an empty answer would hide a typo
            logged = sorted(self.get_run(run_id).data.metrics)
            raise NotFound(
                f"Run {run_id} has no metric {key!r}; its metrics are "
                f"{', '.join(logged) if logged else 'none yet'}. See `ferry runs show {run_id}`."
            )
        return history

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = "",
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
    ) -> SearchPage:
        """Runs of the experiments matching ``filter_string``, e.g.
        ``"metrics.acc > 0.9 and params.model = 'rf'"``, ordered by ``order_by`` (None for
        either means none, as MLflow takes it); deleted runs only when ``run_view_type`` asks
        for them."""
        if isinstance(order_by, str):
            order_by = [order_by]
        self.flush()
        runs, next_offset = self.store.search_runs(
            list(experiment_ids),
            filter_string or "",
            list(order_by or ()),
            max_results,
            _decode_token(page_token),
            _view(run_view_type),
        )
        return SearchPage(runs, _encode_token(next_offset))

    # -- logging -----------------------------------------------------------------------

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        if run_id not in self._runs:
            self._run_state(run_id)
        check.check_key(key, "metric")
        number = check.check_metric_value(key, value)
        when = _now_ms() if timestamp is None else check.check_timestamp(key, timestamp)
        at = 0 if step is None else check.check_step(key, step)
        self.journal.append_metric(run_id, key, number, when, at)

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params={key: value})

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags={key: value})

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Mapping[str, Any] | Iterable[Param] = (),
        tags: Mapping[str, Any] | Iterable[RunTag] = (),
    ) -> None:
        """Log many values at once; nothing is logged if any one of them is invalid.

        Raises:
            InvalidArgument: a key or value is malformed.
            Conflict: a param was logged before with another value.
        """
        state = self._run_state(run_id)
        records = metric_records(run_id, metrics, _now_ms())
        param_rows, new_params = param_records(run_id, params, state.params)
        self._append([*records, *param_rows, *tag_records(run_id, tags)])
        state.params.update(new_params)

    # -- artifacts and inputs ----------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Store a file (or every file of a folder) as artifacts of the run."""
        path = Path(local_path)
        if path.is_dir():
            self.log_artifacts(run_id, path, artifact_path)
            return
        if not path.is_file():
            raise NotFound(f"Cannot log artifact {str(path)!r}: no such file or folder.")
        self._run_state(run_id)
        target = f"{artifact_path.rstrip('/')}/{path.name}" if artifact_path else path.name
        blob = self.artifacts.put_file(path)
        self._append(
            [ArtifactRecord(run_id, check.check_artifact_path(target), blob.digest, blob.size)]
        )

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        folder = Path(local_dir)
        if not folder.is_dir():
            raise NotFound(f"Cannot log artifacts from {str(folder)!r}: no such folder.")
        self._run_state(run_id)
        records: list[Record] = []
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = file.relative_to(folder).as_posix()
            target = f"{artifact_path.rstrip('/')}/{relative}" if artifact_path else relative
            blob = self.artifacts.put_file(file)
            records.append(
                ArtifactRecord(run_id, check.check_artifact_path(target), blob.digest, blob.size)
            )
        self._append(records)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        self._run_state(run_id)
        target = check.check_artifact_path(artifact_file)
        blob = self.artifacts.put_bytes(data)
        self._append([ArtifactRecord(run_id, target, blob.digest, blob.size)])

    def log_blob(self, run_id: str, artifact_file: str, digest: str, size: int) -> None:
        """Record content already in the artifact store as an artifact of the run."""
        self._run_state(run_id)
        target = check.check_artifact_path(artifact_file)
        self._append([ArtifactRecord(run_id, target, digest, size)])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.log_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        """Store a mapping as JSON, or as YAML when ``artifact_file`` ends in .yaml/.yml."""
        self.log_text(run_id, dict_text(dictionary, artifact_file), artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """Store a matplotlib figure as an image (format from the file's extension)."""
        self.log_bytes(run_id, figure_bytes(figure, artifact_file), artifact_file)

    def log_input(
        self,
        run_id: str,
        name: str,
        version: str | int,
        digest: str = "",
        context: str = "training",
    ) -> None:
        """Record that the run read version ``version`` of dataset ``name``."""
        self._run_state(run_id)
        check.check_key(name, "dataset")
        self._append([InputRecord(run_id, name, str(version), digest, context)])

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactEntry]:
        check.check_run_id(run_id)
        self.flush()
        return self.store.list_artifacts(run_id, path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | os.PathLike[str]) -> Path:
        """Copy an artifact (or every artifact under a folder path) to ``dst_path``."""
        entries = self.list_artifacts(run_id, path)
        if not entries:
            if not path:
                raise NotFound(f"Run {run_id} has no artifacts.")
            raise NotFound(
                f"Run {run_id} has no artifact {path!r}. See `ferry artifacts list {run_id}`."
            )
        root = Path(dst_path)
        base = path.rstrip("/").rpartition("/")[0]
        for entry in entries:
            relative = entry.path[len(base) + 1 :] if base else entry.path
            self.artifacts.get_file(entry.digest, root / relative)
        first = entries[0].path
        return (
            root / (first[len(base) + 1 :] if base else first)
            if len(entries) == 1
            else root / path.rstrip("/").rpartition("/")[2]
        )


def _view(value: ViewType | str) -> ViewType:
    try:
        return ViewType(value)
    except ValueError as e:
        raise InvalidArgument(
            f"View {value!r} is not one of {', '.join(v.value for v in ViewType)}."
        ) from e


def _encode_token(offset: int | None) -> str | None:
    if offset is None:
        return None
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidArgument(
        f"Page token {token!r} is invalid; pass the token a previous search returned."
    )
