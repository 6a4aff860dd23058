"""What MLflow's clients need beyond ferryml's own tracking and registry records: MLflow
3's logged models (with their files by digest), the datasets runs read (source, schema,
profile), experiment and run renames, and tag deletions. A part of the SQL store, used
by the team server's MLflow routes and by ``ferry import mlflow``."""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml.errors import AlreadyExists, NotFound, StoreUnavailable
from ferryml.store import _dialect, _run_writes
from ferryml.store import _schema as t
from ferryml.store.entities import Metric
from ferryml.store.records import Record
from ferryml.store.sql import StorePart, _experiment_int

__all__ = ["DatasetInput", "LoggedModel", "MetricRow", "SqlMlflowStore"]

MetricRow = tuple[str, float, int, int]  # a latest value: key, value, timestamp, step
_LATEST = "SELECT run_id, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_id "


def _now() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class LoggedModel:
    """An MLflow 3 logged model: a named model record of an experiment, usually made by a
    run, whose files live apart from the run's artifacts."""

    model_id: str
    experiment_id: str
    name: str
    source_run_id: str | None
    status: str
    model_type: str
    creation_time: int
    last_update_time: int
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a run read, as MLflow describes it, with the input's tags (its context
    among them)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str
    profile: str
    tags: Mapping[str, str] = field(default_factory=dict)


class SqlMlflowStore(StorePart):
    """MLflow's extra records over the metadata store."""

    # -- experiments ---------------------------------------------------------------------

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        number = self._experiment(experiment_id)

        def write() -> None:
            with self._write() as conn:
                row = {"experiment_id": number, "key": key, "value": value}
                _dialect.upsert(conn, t.experiment_tags, [row], ("experiment_id", "key"))

        _dialect.retry_locked(write)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        number = self._experiment(experiment_id)
        c = t.experiment_tags.c
        self._execute(delete(t.experiment_tags).where(c.experiment_id == number, c.key == key))

    def rename_experiment(self, experiment_id: str, name: str) -> None:
        number = self._experiment(experiment_id)
        stmt = (
            update(t.experiments)
            .where(t.experiments.c.experiment_id == number)
            .values(name=name, last_update_time=_now())
        )
        try:
            self._execute(stmt)
        except SAIntegrityError as e:
            raise AlreadyExists(f"Experiment {name!r} already exists; pick another name.") from e

    def _experiment(self, experiment_id: str) -> int:
        return int(self.sql.get_experiment(experiment_id).experiment_id)

    # -- runs ----------------------------------------------------------------------------

    def rename_run(self, run_id: str, name: str) -> None:
        self.sql.get_run_info(run_id)

        def write() -> None:
            with self._write() as conn:
                conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(run_name=name))
                row = {"run_id": run_id, "key": "mlflow.runName", "value": name}
                _dialect.upsert(conn, t.tags, [row], ("run_id", "key"))

        _dialect.retry_locked(write)

    def write_records(self, run_id: str, records: Sequence[Record]) -> None:
        """Records of the run ``run_id``, written in one transaction that first checks
        the run is active (MLflow refuses values for a deleted run).

        Raises:
            NotFound: no such run.
            InvalidArgument: the run is deleted, or a record names another run.
        """
        engine = self.sql.engine
        _dialect.retry_locked(lambda: _run_writes.write_records(engine, records, run_id))

    def delete_run_tag(self, run_id: str, key: str) -> None:
        self.sql.get_run_info(run_id)
        c = t.tags.c
        found = self._scalar(select(c.key).where(c.run_id == run_id, c.key == key))
        if found is None:
            raise NotFound(f"Run {run_id!r} has no tag {key!r}.")
        self._execute(delete(t.tags).where(c.run_id == run_id, c.key == key))

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[Metric]]:
        """Each run's latest value per key, with its step and time."""
        rows = self.latest_metric_rows(run_ids)
        return {run_id: [Metric(*row) for row in found] for run_id, found in rows.items()}

    def latest_metric_rows(self, run_ids: Sequence[str]) -> dict[str, list[MetricRow]]:
        """Each run's latest value per key as ``(key, value, timestamp, step)``, read
        through the driver's cursor: a row object per value cost ten times the query (a
        search's page of 1,000 runs holds 10,000 values)."""
        found: dict[str, list[MetricRow]] = defaultdict(list)
        nan = math.nan
        with self.sql.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                for chunk in _chunks(list(run_ids)):
                    if conn.dialect.name == "sqlite":
                        cursor.execute(_LATEST + f"IN ({', '.join('?' * len(chunk))})", chunk)
                    else:
                        cursor.execute(_LATEST + "= ANY(%s)", (chunk,))
                    for run_id, key, value, is_nan, timestamp, step in cursor.fetchall():
                        found[run_id].append((key, nan if is_nan else value, timestamp, step))
            except _driver_errors(conn.dialect.name) as e:  # the engine's mapping is bypassed
                raise StoreUnavailable(
                    f"Reading the runs' latest metrics failed: {e}. Check the database is "
                    "running; the search can be sent again."
                ) from e
            finally:
                cursor.close()
        return found

    # -- datasets ------------------------------------------------------------------------

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record datasets a run read; the same input twice is stored once."""
        self.sql.get_run_info(run_id)
        if not inputs:
            return
        datasets = [
            {
                "name": i.name,
                "digest": i.digest,
                "source_type": i.source_type,
                "source": i.source,
                "schema": i.schema,
                "profile": i.profile,
            }
            for i in inputs
        ]
        tags = [
            {"run_id": run_id, "name": i.name, "digest": i.digest, "tags": json.dumps(i.tags)}
            for i in inputs
        ]
        refs = [
            {
                "run_id": run_id,
                "name": i.name[:256],
                "version": i.digest[:64],
                "digest": i.digest[:80],
                "context": i.tags.get("mlflow.data.context", "")[:64],
            }
            for i in inputs
        ]

        def write() -> None:
            with self._write() as conn:
                _dialect.upsert(conn, t.mlflow_datasets, datasets, ("name", "digest"))
                _dialect.upsert(conn, t.mlflow_inputs, tags, ("run_id", "name", "digest"))
                _dialect.insert_ignore(conn, t.run_inputs, refs)

        _dialect.retry_locked(write)

    def list_inputs(self, run_ids: Sequence[str]) -> dict[str, list[DatasetInput]]:
        i, d = t.mlflow_inputs.c, t.mlflow_datasets.c
        found: dict[str, list[DatasetInput]] = defaultdict(list)
        for chunk in _chunks(list(run_ids)):
            stmt = (
                select(i.run_id, i.tags, t.mlflow_datasets)
                .join(t.mlflow_datasets, (d.name == i.name) & (d.digest == i.digest))
                .where(i.run_id.in_(chunk))
                .order_by(i.run_id, i.name)
            )
            with self.sql.engine.connect() as conn:
                for r in conn.execute(stmt):
                    found[r.run_id].append(
                        DatasetInput(
                            r.name,
                            r.digest,
                            r.source_type,
                            r.source,
                            r.schema,
                            r.profile,
                            json.loads(r.tags),
                        )
                    )
        return found

    # -- logged models -------------------------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        *,
        source_run_id: str | None = None,
        model_type: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        status: str = "LOGGED_MODEL_PENDING",
        model_id: str | None = None,
        creation_time: int | None = None,
    ) -> LoggedModel:
        number = self._experiment(experiment_id)
        if source_run_id:
            self.sql.get_run_info(source_run_id)
        now = creation_time or _now()
        new_id = model_id or f"m-{uuid.uuid4().hex}"
        row = {
            "model_id": new_id,
            "experiment_id": number,
            "name": name,
            "source_run_id": source_run_id or None,
            "status": status,
            "model_type": model_type,
            "creation_time": now,
            "last_update_time": now,
            "tags": json.dumps(dict(tags or {})),
            "params": json.dumps(dict(params or {})),
        }

        def write() -> None:
            with self._write() as conn:
                _dialect.insert_ignore(conn, t.logged_models, [row])

        _dialect.retry_locked(write)
        return self.get_logged_model(new_id)

    def get_logged_model(self, model_id: str) -> LoggedModel:
        found = self._models(t.logged_models.c.model_id == model_id)
        if not found:
            raise NotFound(f"Logged model {model_id!r} not found.")
        return found[0]

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        *,
        name: str | None = None,
        source_run_id: str | None = None,
    ) -> list[LoggedModel]:
        c = t.logged_models.c
        ids = []
        for experiment_id in experiment_ids:
            with contextlib.suppress(NotFound):  # not an id ('abc', '²', 10**20): no models
                ids.append(_experiment_int(experiment_id))
        conditions: list[Any] = [c.experiment_id.in_(ids)]
        if name is not None:
            conditions.append(c.name == name)
        if source_run_id is not None:
            conditions.append(c.source_run_id == source_run_id)
        return self._models(*conditions)

    def models_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[LoggedModel]]:
        found: dict[str, list[LoggedModel]] = defaultdict(list)
        for chunk in _chunks(list(run_ids)):
            for model in self._models(t.logged_models.c.source_run_id.in_(chunk)):
                found[model.source_run_id or ""].append(model)
        return found

    def update_logged_model(self, model_id: str, *, status: str) -> LoggedModel:
        self.get_logged_model(model_id)
        self._execute(
            update(t.logged_models)
            .where(t.logged_models.c.model_id == model_id)
            .values(status=status, last_update_time=_now())
        )
        return self.get_logged_model(model_id)

    def set_logged_model_tags(
        self, model_id: str, tags: Mapping[str, str], *, remove: Iterable[str] = ()
    ) -> None:
        c = t.logged_models.c

        def write() -> None:
            with self._write() as conn:
                current = conn.execute(select(c.tags).where(c.model_id == model_id)).scalar()
                if current is None:
                    raise NotFound(f"Logged model {model_id!r} not found.")
                merged = {**json.loads(current), **tags}
                for key in remove:
                    merged.pop(key, None)
                conn.execute(
                    update(t.logged_models)
                    .where(c.model_id == model_id)
                    .values(tags=json.dumps(merged), last_update_time=_now())
                )

        _dialect.retry_locked(write)

    def delete_logged_model(self, model_id: str) -> None:
        self.get_logged_model(model_id)

        def write() -> None:
            with self._write() as conn:
                f = t.logged_model_files.c
                conn.execute(delete(t.logged_model_files).where(f.model_id == model_id))
                conn.execute(delete(t.logged_models).where(t.logged_models.c.model_id == model_id))

        _dialect.retry_locked(write)

    def add_model_file(self, model_id: str, path: str, digest: str, size: int) -> None:
        self.get_logged_model(model_id)
        row = {"model_id": model_id, "path": path, "digest": digest, "size": size}

        def write() -> None:
            with self._write() as conn:
                _dialect.upsert(conn, t.logged_model_files, [row], ("model_id", "path"))

        _dialect.retry_locked(write)

    def list_model_files(self, model_id: str, prefix: str = "") -> list[tuple[str, str, int]]:
        """(path, digest, size) of a logged model's files under ``prefix``."""
        f = t.logged_model_files.c
        stmt = select(f.path, f.digest, f.size).where(f.model_id == model_id).order_by(f.path)
        if prefix:
            stmt = stmt.where(or_(f.path == prefix, f.path.startswith(prefix.rstrip("/") + "/")))
        with self.sql.engine.connect() as conn:
            return [(r.path, r.digest, r.size) for r in conn.execute(stmt)]

    def _models(self, *conditions: Any) -> list[LoggedModel]:
        c = t.logged_models.c
        stmt = select(t.logged_models).where(*conditions).order_by(c.creation_time.desc())
        with self.sql.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            LoggedModel(
                r.model_id,
                str(r.experiment_id),
                r.name,
                r.source_run_id,
                r.status,
                r.model_type,
                r.creation_time,
                r.last_update_time,
                json.loads(r.tags),
                json.loads(r.params),
            )
            for r in rows
        ]

    # -- registry ------------------------------------------------------------------------

    def create_registered_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> None:
        """A registered model with no versions yet (ferryml makes one on its first
        version); a name deleted before is taken again."""
        m = t.registered_models.c
        now = _now()

        def write() -> None:
            with self._write() as conn:
                row = conn.execute(select(m.deleted_time).where(m.name == name)).first()
                if row is not None and row.deleted_time is None:
                    raise AlreadyExists(
                        f"Registered model {name!r} already exists. See `ferry models list`."
                    )
                if row is None:
                    conn.execute(
                        t.registered_models.insert().values(
                            name=name,
                            description=description,
                            creation_time=now,
                            last_update_time=now,
                        )
                    )
                else:
                    conn.execute(
                        update(t.registered_models)
                        .where(m.name == name)
                        .values(description=description, last_update_time=now, deleted_time=None)
                    )
                rows = [
                    {"name": name, "version": 0, "key": k, "value": v}
                    for k, v in (tags or {}).items()
                ]
                _dialect.upsert(conn, t.model_tags, rows, ("name", "version", "key"))

        _dialect.retry_locked(write)

    def update_registered_model(self, name: str, *, description: str) -> None:
        m = t.registered_models.c
        stmt = (
            update(t.registered_models)
            .where(m.name == name, m.deleted_time.is_(None))
            .values(description=description, last_update_time=_now())
        )
        self._execute(stmt)

    def delete_model_tag(self, name: str, version: int, key: str) -> None:
        """Delete a tag of a version (``version`` 0: of the registered model itself)."""
        c = t.model_tags.c
        self._execute(
            delete(t.model_tags).where(c.name == name, c.version == version, c.key == key)
        )

    # -- helpers -------------------------------------------------------------------------

    def _execute(self, stmt: Any) -> None:
        def write() -> None:
            with self._write() as conn:
                conn.execute(stmt)

        _dialect.retry_locked(write)

    def _scalar(self, stmt: Any) -> Any:
        with self.sql.engine.connect() as conn:
            return conn.execute(stmt).scalar()


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _driver_errors(dialect: str) -> tuple[type[BaseException], ...]:
    """The database driver's own errors, for statements sent through its cursor."""
    if dialect == "sqlite":
        import sqlite3

        return (sqlite3.Error,)
    import psycopg

    return (psycopg.Error,)
