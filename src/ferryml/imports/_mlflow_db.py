"""Reading an MLflow tracking database (``sqlite:///mlflow.db``, ``postgresql://...``): the
tables MLflow's SQL store writes, read with plain queries, so MLflow need not be installed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ferryml.errors import InvalidArgument, StoreUnavailable
from ferryml.imports._mlflow_types import (
    SourceExperiment,
    SourceLoggedModel,
    SourceModel,
    SourceRun,
    SourceVersion,
)
from ferryml.store.sql_mlflow import DatasetInput

__all__ = ["DbSource"]

# MLflow stores a logged model's status as its proto enum's number.
_MODEL_STATUS = {
    1: "LOGGED_MODEL_PENDING",
    2: "LOGGED_MODEL_READY",
    3: "LOGGED_MODEL_UPLOAD_FAILED",
}


class DbSource:
    """An MLflow database, read only."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        self.url = url
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

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        if self._engine is None:
            raise InvalidArgument("The MLflow database is not open; call open() first.")
        with self._engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def _has(self, table: str) -> bool:
        try:
            self._rows(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - our own table names
            return True
        except SQLAlchemyError:
            return False

    # -- tracking ------------------------------------------------------------------------

    def experiments(self) -> list[SourceExperiment]:
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for r in self._rows("SELECT experiment_id, key, value FROM experiment_tags"):
            tags[str(r.experiment_id)][r.key] = r.value or ""
        rows = self._rows(
            "SELECT experiment_id, name, lifecycle_stage, creation_time, last_update_time "
            "FROM experiments ORDER BY experiment_id"
        )
        return [
            SourceExperiment(
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
        rows = self._rows(
            "SELECT run_uuid, name, user_id, status, start_time, end_time, lifecycle_stage, "
            "artifact_uri FROM runs WHERE experiment_id = :e ORDER BY start_time, run_uuid",
            e=int(experiment_id),
        )
        for r in rows:
            params = {
                p.key: p.value
                for p in self._rows(
                    "SELECT key, value FROM params WHERE run_uuid = :r", r=r.run_uuid
                )
            }
            tags = {
                t.key: t.value or ""
                for t in self._rows("SELECT key, value FROM tags WHERE run_uuid = :r", r=r.run_uuid)
            }
            yield SourceRun(
                r.run_uuid,
                experiment_id,
                r.name or tags.get("mlflow.runName") or r.run_uuid[:8],
                r.user_id or "",
                r.status or "FINISHED",
                r.start_time or 0,
                r.end_time,
                r.lifecycle_stage or "active",
                r.artifact_uri or "",
                params,
                tags,
            )

    def history(self, run_id: str) -> list[tuple[str, float, int, int, bool]]:
        rows = self._rows(
            "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = :r",
            r=run_id,
        )
        return [(r.key, float(r.value), r.timestamp, r.step, bool(r.is_nan)) for r in rows]

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
                r.model_id,
                str(r.experiment_id),
                r.name,
                r.source_run_id,
                _MODEL_STATUS.get(r.status, "LOGGED_MODEL_READY"),
                r.model_type or "",
                r.creation_timestamp_ms,
                r.last_updated_timestamp_ms,
                r.artifact_location,
                tags[r.model_id],
                params[r.model_id],
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
                    v.name,
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
                r.name,
                r.description or "",
                r.creation_time or 0,
                tags[r.name],
                versions[r.name],
                aliases[r.name],
            )
            for r in rows
        ]
