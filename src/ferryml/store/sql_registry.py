"""The model registry over the same SQL database as the tracking store. Every alias move
and status change writes an audit event in the same transaction."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import ModelVersion, RegisteredModel, RegistryEvent
from ferryml.store.sql import StorePart

__all__ = ["SqlRegistryStore"]


def _now() -> int:
    return int(time.time() * 1000)


class SqlRegistryStore(StorePart):
    """Registered models, their versions, aliases, tags and audit trail."""

    # -- versions ------------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        *,
        package_digest: str,
        flavor: str,
        source: str,
        run_id: str | None,
        user: str,
        signature: str | None = None,
        data_versions: tuple[str, ...] = (),
        profile_digest: str | None = None,
        description: str = "",
    ) -> ModelVersion:
        """The next version of ``name`` (the model is created on first use)."""

        def create() -> int:
            now = _now()
            with self._write() as conn:
                _dialect.insert_ignore(
                    conn,
                    t.registered_models,
                    [
                        {
                            "name": name,
                            "description": "",
                            "creation_time": now,
                            "last_update_time": now,
                        }
                    ],
                )
                latest = conn.execute(
                    select(func.max(t.model_versions.c.version)).where(
                        t.model_versions.c.name == name
                    )
                ).scalar()
                version = (latest or 0) + 1
                conn.execute(
                    t.model_versions.insert().values(
                        name=name,
                        version=version,
                        package_digest=package_digest,
                        flavor=flavor,
                        source=source,
                        run_id=run_id,
                        signature=signature,
                        data_versions=json.dumps(list(data_versions)),
                        profile_digest=profile_digest,
                        description=description,
                        creation_time=now,
                        last_update_time=now,
                    )
                )
                conn.execute(
                    update(t.registered_models)
                    .where(t.registered_models.c.name == name)
                    .values(last_update_time=now, deleted_time=None)
                )
                _event(
                    conn,
                    name,
                    "create_version",
                    user,
                    version=version,
                    to_version=version,
                    evidence={"source": source, "package": package_digest},
                )
                return version

        for _ in range(10):  # two writers may pick the same number on PostgreSQL
            try:
                version = _dialect.retry_locked(create)
                break
            except SAIntegrityError:
                continue
        else:
            version = _dialect.retry_locked(create)
        return self.get_model_version(name, version)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        found = self._versions(name, version)
        if not found:
            self.get_registered_model(name)
            if self._is_deleted(name, version):
                raise NotFound(
                    f"Version {version} of model {name!r} was deleted. "
                    f"See `ferry models versions {name}`."
                )
            raise NotFound(
                f"Model {name!r} has no version {version}. See `ferry models versions {name}`."
            )
        return found[0]

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        self.get_registered_model(name)
        return self._versions(name, None)

    def _versions(self, name: str, version: int | None) -> list[ModelVersion]:
        v = t.model_versions.c
        stmt = (
            select(t.model_versions)
            .where(v.name == name, v.deleted_time.is_(None))
            .order_by(v.version)
        )
        if version is not None:
            stmt = stmt.where(v.version == version)
        with self._store.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            aliases = _aliases(conn, name)
            tags = _tags(conn, name)
        by_version: dict[int, list[str]] = defaultdict(list)
        for alias, number in aliases.items():
            by_version[number].append(alias)
        return [
            _version(r, tuple(sorted(by_version[r.version])), tags.get(r.version, {})) for r in rows
        ]

    def _is_deleted(self, name: str, version: int) -> bool:
        v = t.model_versions.c
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(v.deleted_time).where(v.name == name, v.version == version)
            ).first()
        return row is not None and row.deleted_time is not None

    def delete_model_version(self, name: str, version: int, *, user: str, reason: str = "") -> None:
        """Delete a version for good; its number is never given to another.

        Raises NotFound, Conflict while an alias points at it.
        """
        current = self.get_model_version(name, version)
        if current.aliases:
            alias = current.aliases[0]
            raise Conflict(
                f"Version {version} of model {name!r} is still {', '.join(current.aliases)}; "
                f"move the alias (`ferry models alias {name} {alias} VERSION`) or delete it "
                f"(`ferry models delete-alias {name} {alias}`) first."
            )

        def write() -> None:
            now = _now()
            with self._write() as conn:
                # The alias check again, inside the transaction: one may have moved here since.
                if version in _aliases(conn, name).values():
                    raise Conflict(f"Version {version} of model {name!r} was just aliased.")
                v = t.model_versions.c
                conn.execute(
                    update(t.model_versions)
                    .where(v.name == name, v.version == version)
                    .values(deleted_time=now, last_update_time=now)
                )
                g = t.model_tags.c
                conn.execute(delete(t.model_tags).where(g.name == name, g.version == version))
                _event(conn, name, "delete_version", user, version=version, reason=reason)

        _dialect.retry_locked(write)

    def delete_registered_model(self, name: str, *, user: str, reason: str = "") -> None:
        """Delete a model and all its versions; a model registered later under the same
        name numbers its versions on from the last one.

        Raises NotFound, Conflict while it has aliases.
        """
        model = self.get_registered_model(name)
        if model.aliases:
            first = next(iter(model.aliases))
            raise Conflict(
                f"Model {name!r} has aliases "
                f"{', '.join(f'{a} (version {n})' for a, n in model.aliases.items())}; "
                f"delete them first (`ferry models delete-alias {name} {first}`)."
            )

        def write() -> None:
            now = _now()
            with self._write() as conn:
                if _aliases(conn, name):
                    raise Conflict(f"Model {name!r} was just aliased.")
                v, m = t.model_versions.c, t.registered_models.c
                conn.execute(
                    update(t.model_versions)
                    .where(v.name == name, v.deleted_time.is_(None))
                    .values(deleted_time=now, last_update_time=now)
                )
                conn.execute(
                    update(t.registered_models)
                    .where(m.name == name)
                    .values(deleted_time=now, last_update_time=now, description="")
                )
                conn.execute(delete(t.model_tags).where(t.model_tags.c.name == name))
                _event(conn, name, "delete_model", user, reason=reason)

        _dialect.retry_locked(write)

    def update_model_version(
        self,
        name: str,
        version: int,
        *,
        user: str,
        status: str | None = None,
        description: str | None = None,
        metrics: Mapping[str, float] | None = None,
        reason: str = "",
    ) -> ModelVersion:
        current = self.get_model_version(name, version)
        values: dict[str, Any] = {"last_update_time": _now()}
        if status is not None:
            if status not in ("READY", "ARCHIVED"):
                raise InvalidArgument(f"Status {status!r} is not READY or ARCHIVED.")
            values["status"] = status
        if description is not None:
            values["description"] = description
        if metrics is not None:
            values["metrics"] = json.dumps({**current.metrics, **metrics})

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    update(t.model_versions)
                    .where(t.model_versions.c.name == name, t.model_versions.c.version == version)
                    .values(**values)
                )
                if status is not None and status != current.status:
                    _event(
                        conn,
                        name,
                        "set_status",
                        user,
                        version=version,
                        reason=reason,
                        evidence={"from": current.status, "to": status},
                    )

        _dialect.retry_locked(write)
        return self.get_model_version(name, version)

    # -- models, aliases, tags -----------------------------------------------------------

    def get_registered_model(self, name: str) -> RegisteredModel:
        found = self._models(name)
        if not found:
            raise NotFound(f"Registered model {name!r} not found. See `ferry models list`.")
        return found[0]

    def list_registered_models(self) -> list[RegisteredModel]:
        return self._models(None)

    def _models(self, name: str | None) -> list[RegisteredModel]:
        m, v = t.registered_models.c, t.model_versions.c
        latest = (
            select(v.name, func.max(v.version).label("latest"))
            .where(v.deleted_time.is_(None))
            .group_by(v.name)
            .subquery()
        )
        stmt = (
            select(t.registered_models, latest.c.latest)
            .outerjoin(latest, latest.c.name == m.name)
            .where(m.deleted_time.is_(None))
            .order_by(m.name)
        )
        if name is not None:
            stmt = stmt.where(m.name == name)
        with self._store.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            return [
                RegisteredModel(
                    r.name,
                    r.description,
                    r.creation_time,
                    r.last_update_time,
                    _aliases(conn, r.name),
                    _tags(conn, r.name).get(0, {}),
                    r.latest,
                )
                for r in rows
            ]

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        user: str,
        reason: str = "",
        evidence: Mapping[str, Any] | None = None,
        action: str = "set_alias",
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before."""
        self.get_model_version(name, version)

        def write() -> int | None:
            with self._write() as conn:
                before = _aliases(conn, name).get(alias)
                _dialect.upsert(
                    conn,
                    t.model_aliases,
                    [{"name": name, "alias": alias, "version": version}],
                    ("name", "alias"),
                )
                _event(
                    conn,
                    name,
                    action,
                    user,
                    version=version,
                    alias=alias,
                    from_version=before,
                    to_version=version,
                    reason=reason,
                    evidence=evidence or {},
                )
                return before

        return _dialect.retry_locked(write)

    def delete_alias(self, name: str, alias: str, *, user: str, reason: str = "") -> None:
        version = self.resolve_alias(name, alias)

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    delete(t.model_aliases).where(
                        t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                    )
                )
                _event(
                    conn,
                    name,
                    "delete_alias",
                    user,
                    alias=alias,
                    from_version=version,
                    reason=reason,
                )

        _dialect.retry_locked(write)

    def record_refusal(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        champion: int | None,
        user: str,
        reason: str = "",
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        """Record in the audit trail that ``version`` was refused ``alias``, which stays
        with ``champion``."""
        self.get_model_version(name, version)

        def write() -> None:
            with self._write() as conn:
                _event(
                    conn,
                    name,
                    "promotion_refused",
                    user,
                    version=version,
                    alias=alias,
                    from_version=champion,
                    to_version=champion,
                    reason=reason,
                    evidence=evidence or {},
                )

        _dialect.retry_locked(write)

    def resolve_alias(self, name: str, alias: str) -> int:
        with self._store.engine.connect() as conn:
            version = _aliases(conn, name).get(alias)
        if version is None:
            self.get_registered_model(name)
            raise NotFound(
                f"Model {name!r} has no alias {alias!r}. Point one with "
                f"`ferry models alias {name} {alias} VERSION`."
            )
        return version

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        def write() -> None:
            with self._write() as conn:
                _dialect.upsert(
                    conn,
                    t.model_tags,
                    [{"name": name, "version": version, "key": key, "value": value}],
                    ("name", "version", "key"),
                )

        _dialect.retry_locked(write)

    def events(self, name: str) -> list[RegistryEvent]:
        e = t.registry_events.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.registry_events).where(e.name == name).order_by(e.id)
            ).all()
        return [
            RegistryEvent(
                r.id,
                r.time,
                r.user_id,
                r.name,
                r.action,
                r.version,
                r.alias,
                r.from_version,
                r.to_version,
                r.reason,
                json.loads(r.evidence),
            )
            for r in rows
        ]


def _event(conn: Connection, name: str, action: str, user: str, **values: Any) -> None:
    values["evidence"] = json.dumps(values.get("evidence", {}), default=str)
    conn.execute(
        t.registry_events.insert().values(
            time=_now(), user_id=user, name=name, action=action, **values
        )
    )


def _aliases(conn: Connection, name: str) -> dict[str, int]:
    a = t.model_aliases.c
    return {
        r.alias: r.version
        for r in conn.execute(select(a.alias, a.version).where(a.name == name).order_by(a.alias))
    }


def _tags(conn: Connection, name: str) -> dict[int, dict[str, str]]:
    g = t.model_tags.c
    found: dict[int, dict[str, str]] = defaultdict(dict)
    for r in conn.execute(select(g.version, g.key, g.value).where(g.name == name)):
        found[r.version][r.key] = r.value
    return found


def _version(row: Any, aliases: tuple[str, ...], tags: dict[str, str]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        package_digest=row.package_digest,
        flavor=row.flavor,
        source=row.source,
        run_id=row.run_id,
        status=row.status,
        description=row.description,
        signature=row.signature,
        data_versions=tuple(json.loads(row.data_versions)),
        profile_digest=row.profile_digest,
        metrics=json.loads(row.metrics),
        creation_time=row.creation_time,
        aliases=aliases,
        tags=tags,
    )
