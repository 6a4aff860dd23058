"""``DatasetStore`` over the same SQL database as the tracking store."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml._naming import check_name
from ferryml.errors import NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import DatasetVersion
from ferryml.store.sql import StorePart

__all__ = ["SqlDatasetStore"]


class SqlDatasetStore(StorePart):
    """Dataset versions in an opened ``SqlStore``'s database.

    Example:
        >>> datasets = SqlDatasetStore(SqlStore("sqlite:///.ferry/ferry.db").open())
    """

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
    ) -> DatasetVersion:
        """Record the next version of ``name`` (created on first use); numbers start at 1.

        Raises:
            InvalidArgument: ``name`` breaks the naming rule.
        """
        check_name(name, "Dataset", "images/train", paths=True)
        values: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "manifest_digest": manifest_digest,
            "files": files,
            "size": size,
            "source": source,
            "rows": rows,
            "schema": schema,
            "profile_digest": profile_digest,
            "run_id": run_id,
        }

        def create() -> DatasetVersion:
            now = int(time.time() * 1000)
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                _dialect.insert_ignore(conn, t.datasets, [{"name": name, "creation_time": now}])
                latest = conn.execute(
                    select(func.max(t.dataset_versions.c.version)).where(
                        t.dataset_versions.c.name == name
                    )
                ).scalar()
                row = {**values, "version": (latest or 0) + 1, "creation_time": now}
                conn.execute(t.dataset_versions.insert().values(**row))
            return DatasetVersion(**row)

        for _ in range(10):  # PostgreSQL: two writers may pick the same number; one retries
            try:
                return _dialect.retry_locked(create)
            except SAIntegrityError:
                continue
        return _dialect.retry_locked(create)

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version of ``name``, the latest when ``version`` is None.

        Raises:
            NotFound: no such dataset or version.
        """
        v = t.dataset_versions.c
        stmt = select(t.dataset_versions).where(v.name == name, v.deleted_time.is_(None))
        stmt = (
            stmt.order_by(v.version.desc()).limit(1)
            if version is None
            else stmt.where(v.version == version)
        )
        with self._store.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is not None:
            return _version(row)
        if version is not None and self._deleted(name, version):
            raise NotFound(
                f"Version {version} of dataset {name!r} was deleted. See `ferry data log {name}`."
            )
        if version is not None and self.list_dataset_versions_or_none(name):
            raise NotFound(
                f"Dataset {name!r} has no version {version}. See `ferry data log {name}`."
            )
        raise NotFound(f"Dataset {name!r} not found. See `ferry data ls`.")

    def _deleted(self, name: str, version: int) -> bool:
        v = t.dataset_versions.c
        with self._store.engine.connect() as conn:
            when = conn.execute(
                select(v.deleted_time).where(v.name == name, v.version == version)
            ).scalar()
        return when is not None

    def delete_dataset_version(self, name: str, version: int) -> None:
        """Delete a version for good; its number is never given to other data.

        Raises NotFound.
        """
        self.get_dataset_version(name, version)
        v = t.dataset_versions.c

        def write() -> None:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                conn.execute(
                    update(t.dataset_versions)
                    .where(v.name == name, v.version == version)
                    .values(deleted_time=int(time.time() * 1000))
                )

        _dialect.retry_locked(write)

    def list_dataset_versions_or_none(self, name: str) -> list[DatasetVersion]:
        v = t.dataset_versions.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.dataset_versions)
                .where(v.name == name, v.deleted_time.is_(None))
                .order_by(v.version)
            ).all()
        return [_version(r) for r in rows]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """Every version of ``name``, oldest first. Raises NotFound for an unknown name."""
        found = self.list_dataset_versions_or_none(name)
        if not found:
            raise NotFound(f"Dataset {name!r} not found. See `ferry data ls`.")
        return found

    def list_datasets(self) -> list[DatasetVersion]:
        """The latest version of every dataset, by name."""
        v = t.dataset_versions.c
        latest = (
            select(v.name, func.max(v.version).label("version"))
            .where(v.deleted_time.is_(None))
            .group_by(v.name)
            .subquery()
        )
        stmt = (
            select(t.dataset_versions)
            .join(latest, (latest.c.name == v.name) & (latest.c.version == v.version))
            .order_by(v.name)
        )
        with self._store.engine.connect() as conn:
            return [_version(r) for r in conn.execute(stmt)]


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        name=row.name,
        version=row.version,
        kind=row.kind,
        manifest_digest=row.manifest_digest,
        files=row.files,
        size=row.size,
        source=row.source,
        rows=row.rows,
        schema=row.schema,
        profile_digest=row.profile_digest,
        run_id=row.run_id,
        creation_time=row.creation_time,
    )
