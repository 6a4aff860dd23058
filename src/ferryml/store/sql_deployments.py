"""Deployments over the same SQL database: a spec per name, and every change recorded
with who and why in the same transaction."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from ferryml.errors import AlreadyExists, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.sql import StorePart

__all__ = ["DeploymentEvent", "SqlDeploymentStore"]


@dataclass(frozen=True)
class DeploymentEvent:
    id: int
    time: int
    user: str
    name: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


class SqlDeploymentStore(StorePart):
    def create(self, name: str, spec: dict[str, Any], *, user: str, reason: str = "") -> None:
        now = int(time.time() * 1000)

        def write() -> None:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                if (
                    conn.execute(
                        select(t.deployments.c.name).where(t.deployments.c.name == name)
                    ).first()
                    is not None
                ):
                    raise AlreadyExists(
                        f"Deployment {name!r} exists already; change it with "
                        f"`ferry deploy set-weights {name} ...` or pick another name."
                    )
                conn.execute(
                    t.deployments.insert().values(
                        name=name, spec=json.dumps(spec), creation_time=now, last_update_time=now
                    )
                )
                _event(conn, name, "create", user, None, spec, reason)

        _dialect.retry_locked(write)

    def get(self, name: str) -> dict[str, Any]:
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(t.deployments.c.spec).where(t.deployments.c.name == name)
            ).first()
        if row is None:
            raise NotFound(f"Deployment {name!r} not found. See `ferry deploy list`.")
        return json.loads(row.spec)

    def list_deployments(self) -> list[tuple[str, dict[str, Any]]]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.deployments.c.name, t.deployments.c.spec).order_by(t.deployments.c.name)
            ).all()
        return [(r.name, json.loads(r.spec)) for r in rows]

    def update(
        self, name: str, spec: dict[str, Any], *, action: str, user: str, reason: str = ""
    ) -> dict[str, Any]:
        """Replace the spec; returns the one it replaced."""

        def write() -> dict[str, Any]:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                row = conn.execute(
                    select(t.deployments.c.spec).where(t.deployments.c.name == name)
                ).first()
                if row is None:
                    raise NotFound(f"Deployment {name!r} not found. See `ferry deploy list`.")
                before: dict[str, Any] = json.loads(row.spec)
                conn.execute(
                    update(t.deployments)
                    .where(t.deployments.c.name == name)
                    .values(spec=json.dumps(spec), last_update_time=int(time.time() * 1000))
                )
                _event(conn, name, action, user, before, spec, reason)
                return before

        return _dialect.retry_locked(write)

    def events(self, name: str) -> list[DeploymentEvent]:
        e = t.deployment_events.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.deployment_events).where(e.name == name).order_by(e.id)
            ).all()
        return [
            DeploymentEvent(
                r.id,
                r.time,
                r.user_id,
                r.name,
                r.action,
                json.loads(r.before) if r.before else None,
                json.loads(r.after) if r.after else None,
                r.reason,
            )
            for r in rows
        ]


def _event(
    conn: Any,
    name: str,
    action: str,
    user: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str,
) -> None:
    conn.execute(
        t.deployment_events.insert().values(
            time=int(time.time() * 1000),
            user_id=user,
            name=name,
            action=action,
            before=json.dumps(before) if before is not None else None,
            after=json.dumps(after) if after is not None else None,
            reason=reason,
        )
    )
