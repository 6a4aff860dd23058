"""Reading an MLflow tracking database (``sqlite:///mlflow.db``, ``postgresql://...``): the
tables MLflow's SQL store writes, read with plain queries, so MLflow need not be installed."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ferryml.errors import InvalidArgument, StoreUnavailable
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

__all__ = ["DbSource"]

# A logged value in the order of ferryml's metrics table (MetricRow), NaN stored as 0.0.
_VALUES = "run_uuid, key, step, timestamp, CASE WHEN is_nan THEN 0.0 ELSE value END, is_nan"


class DbSource:
    """An MLflow database, read only."""

    def __init__(self, url: str, artifacts_root: str | None = None) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        self.url = url
        self.artifacts_root = artifacts_root
        self.problems: list[str] = []
        self._engine: Engine | None = None

    def open(self) -> DbSource:
        try:
            self._engine = create_engine(self.url)
            with self._engine.connect() as conn:
                conn.execute(text("SELECT experiment_id FROM experiments LIMIT 1"))
        except (DBAPIError, SQLAlchemyError) as e:
            raise StoreUnavailable(
                f"Cannot read MLflow's tables at {self.url}: {getattr(e, 'orig', e)}. Name an "
                "MLflow tracking database (sqlite:///mlflow.db, postgresql://...)."
            ) from e
        return self

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise InvalidArgument("The MLflow database is not open; call open() first.")
        return self._engine

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def _has(self, table: str) -> bool:
        try:
            self._rows(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - our own table names
            return True
        except SQLAlchemyError:
            return False

    # -- tracking ------------------------------------------------------------------------

    def experiments(self) -> list[Experiment]:
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for r in self._rows("SELECT experiment_id, key, value FROM experiment_tags"):
            tags[str(r.experiment_id)][r.key] = r.value or ""
        rows = self._rows(
            "SELECT experiment_id, name, lifecycle_stage, creation_time, last_update_time "
            "FROM experiments ORDER BY experiment_id"
        )
        return [
            Experiment(
                str(r.experiment_id),
                r.name,
                r.lifecycle_stage or "active",
                r.creation_time or 0,
                r.last_update_time or r.creation_time or 0,
                tags[str(r.experiment_id)],
            )
            for r in rows
        ]

    def runs(self, experiment_id: str) -> Iterator[SourceRun]:
        e = int(experiment_id)
        params: dict[str, dict[str, str]] = defaultdict(dict)
        for p in self._rows(
            "SELECT p.run_uuid, p.key, p.value FROM params p JOIN runs r "
            "ON r.run_uuid = p.run_uuid WHERE r.experiment_id = :e",
            e=e,
        ):
            params[p.run_uuid][p.key] = p.value
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for t in self._rows(
            "SELECT t.run_uuid, t.key, t.value FROM tags t JOIN runs r "
            "ON r.run_uuid = t.run_uuid WHERE r.experiment_id = :e",
            e=e,
        ):
            tags[t.run_uuid][t.key] = t.value or ""
        rows = self._rows(
            "SELECT run_uuid, name, user_id, status, start_time, end_time, lifecycle_stage, "
            "artifact_uri FROM runs WHERE experiment_id = :e ORDER BY start_time, run_uuid",
            e=e,
        )
        for r in rows:
            run_tags = tags[r.run_uuid]
            info = RunInfo(
                r.run_uuid,
                experiment_id,
                r.name or run_tags.get("mlflow.runName") or r.run_uuid[:8],
                run_status(r.status or "FINISHED"),
                r.start_time or 0,
                r.end_time,
                r.lifecycle_stage or "active",
                run_tags.get("mlflow.parentRunId") or None,
                r.user_id or "",
                run_tags.get("mlflow.note.content", ""),
                None,
            )
            yield SourceRun(Run(info, RunData(params[r.run_uuid], {}, run_tags)), r.artifact_uri)

    def history(self, run_id: str) -> Sequence[MetricRow]:
        # The driver's own cursor: millions of rows, each a plain tuple in the order of
        # ferryml's metrics table, with no per-row objects of SQLAlchemy's.
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"SELECT {_VALUES} FROM metrics WHERE run_uuid = {mark}"  # noqa: S608
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, (run_id,))
            rows: list[Any] = list(cursor.fetchall())
            cursor.close()
        finally:
            connection.close()
        if rows and not isinstance(rows[0][5], bool):  # SQLite's booleans are integers
            return [(r, k, s, t, v, bool(n)) for r, k, s, t, v, n in rows]
        return rows

    @property
    def sqlite_file(self) -> str | None:
        """The database's file when it is SQLite: an SQLite store copies from it directly
        (``history_sql``)."""
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or not Path(database).is_file():
            return None
        return database

    # One run's values, from the file attached as ``source``, for SqlStore.copy_sqlite_metrics.
    history_sql = (
        "SELECT run_uuid AS run_id, key, step, timestamp, CASE WHEN is_nan THEN 0.0 ELSE value "
        "END AS value, is_nan FROM source.metrics WHERE run_uuid = ?"
    )

    def latest(self, run_id: str) -> dict[str, float]:
        # What MLflow's own searches see: its latest_metrics table, which it keeps by the
        # same rule (highest step, timestamp, value); the history where it is missing.
        if not self._has("latest_metrics"):
            return latest_values(self.history(run_id))
        rows = self._rows(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = :r", r=run_id
        )
        return {r.key: math.nan if r.is_nan else r.value for r in rows}

    def inputs(self, run_id: str) -> list[DatasetInput]:
        if not self._has("inputs"):
            return []
        rows = self._rows(
            "SELECT i.input_uuid, d.name, d.digest, d.dataset_source_type, d.dataset_source, "
            "d.dataset_schema, d.dataset_profile FROM inputs i JOIN datasets d "
            "ON d.dataset_uuid = i.source_id WHERE i.source_type = 'DATASET' "
            "AND i.destination_type = 'RUN' AND i.destination_id = :r",
            r=run_id,
        )
        found = []
        for r in rows:
            tags = {
                t.name: t.value
                for t in self._rows(
                    "SELECT name, value FROM input_tags WHERE input_uuid = :i", i=r.input_uuid
                )
            }
            found.append(
                DatasetInput(
                    r.name,
                    r.digest,
                    r.dataset_source_type or "",
                    r.dataset_source or "",
                    r.dataset_schema or "",
                    r.dataset_profile or "",
                    tags,
                )
            )
        return found

    def logged_models(self) -> list[SourceLoggedModel]:
        if not self._has("logged_models"):
            return []
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for t in self._rows("SELECT model_id, tag_key, tag_value FROM logged_model_tags"):
            tags[t.model_id][t.tag_key] = t.tag_value
        params: dict[str, dict[str, str]] = defaultdict(dict)
        for p in self._rows("SELECT model_id, param_key, param_value FROM logged_model_params"):
            params[p.model_id][p.param_key] = p.param_value
        rows = self._rows(
            "SELECT model_id, experiment_id, name, artifact_location, creation_timestamp_ms, "
            "last_updated_timestamp_ms, status, model_type, source_run_id FROM logged_models "
            "WHERE lifecycle_stage IS NULL OR lifecycle_stage = 'active' "
            "ORDER BY creation_timestamp_ms"
        )
        return [
            SourceLoggedModel(
                LoggedModel(
                    r.model_id,
                    str(r.experiment_id),
                    r.name,
                    r.source_run_id,
                    MODEL_STATUS.get(r.status, "LOGGED_MODEL_READY"),
                    r.model_type or "",
                    r.creation_timestamp_ms,
                    r.last_updated_timestamp_ms,
                    tags[r.model_id],
                    params[r.model_id],
                ),
                r.artifact_location,
            )
            for r in rows
        ]

    # -- registry ------------------------------------------------------------------------

    def registered_models(self) -> list[SourceModel]:
        if not self._has("registered_models"):
            return []
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for t in self._rows("SELECT name, key, value FROM registered_model_tags"):
            tags[t.name][t.key] = t.value or ""
        aliases: dict[str, dict[str, int]] = defaultdict(dict)
        for a in self._rows("SELECT name, alias, version FROM registered_model_aliases"):
            aliases[a.name][a.alias] = a.version
        version_tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
        for t in self._rows("SELECT name, version, key, value FROM model_version_tags"):
            version_tags[(t.name, t.version)][t.key] = t.value or ""
        versions: dict[str, list[SourceVersion]] = defaultdict(list)
        for v in self._rows(
            "SELECT name, version, creation_time, description, source, run_id, "
            "storage_location FROM model_versions "
            "WHERE current_stage IS NULL OR current_stage != 'Deleted_Internal' "
            "ORDER BY name, version"
        ):
            versions[v.name].append(
                SourceVersion(
                    v.version,
                    v.source or "",
                    v.run_id,
                    v.description or "",
                    v.creation_time or 0,
                    v.storage_location or "",
                    version_tags[(v.name, v.version)],
                )
            )
        rows = self._rows(
            "SELECT name, description, creation_time, last_updated_time FROM registered_models "
            "ORDER BY name"
        )
        return [
            SourceModel(
                RegisteredModel(
                    r.name,
                    r.description or "",
                    r.creation_time or 0,
                    r.last_updated_time or r.creation_time or 0,
                    aliases[r.name],
                    tags[r.name],
                ),
                versions[r.name],
            )
            for r in rows
        ]

    def files(self, uri: str) -> Iterator[tuple[str, Path]]:
        return local_files(uri, self.artifacts_root)
