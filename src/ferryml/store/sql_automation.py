"""Retraining decisions, their audit trail, each policy's watermarks and the agents' lease,
in the same SQL database as the other stores."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml.errors import Conflict, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.loop import DecisionEvent, DecisionRecord
from ferryml.store.sql import StorePart

__all__ = ["DecisionEvent", "DecisionRecord", "SqlAutomationStore"]


_CHANGED = "Decision {id} changed meanwhile; see `ferry decisions show {id}` and try again."


class SqlAutomationStore(StorePart):
    """``AutomationStore`` (policies' state, the lease, decisions) in an opened
    ``SqlStore``'s database."""

    # -- decisions -------------------------------------------------------------------------

    def create_decision(
        self,
        policy: str,
        deployment: str,
        state: str,
        context: Mapping[str, Any],
        event: tuple[str, str, Mapping[str, Any]],
    ) -> int:
        """A new decision and its first audit event, in one transaction."""

        def write() -> int:
            now = _now()
            with self._write() as conn:
                new_id = conn.execute(
                    insert(t.decisions).values(
                        policy=policy,
                        deployment=deployment,
                        state=state,
                        outcome=None,
                        context=json.dumps(dict(context)),
                        created=now,
                        updated=now,
                    )
                ).inserted_primary_key[0]
                _add_event(conn, int(new_id), *event)
                return int(new_id)

        return _dialect.retry_locked(write)

    def advance(
        self,
        decision_id: int,
        expected_state: str,
        state: str,
        context: Mapping[str, Any],
        event: tuple[str, str, Mapping[str, Any]],
        *,
        outcome: str | None = None,
        expected_updated: int | None = None,
    ) -> bool:
        """Move a decision from ``expected_state`` (last written at ``expected_updated``,
        when given) to ``state`` with its event, atomically; False (nothing written) when
        another writer moved it first."""

        def write() -> bool:
            c = t.decisions.c
            with self._write() as conn:
                condition = (c.id == decision_id) & (c.state == expected_state)
                if expected_updated is not None:
                    condition &= c.updated == expected_updated
                changed = conn.execute(
                    update(t.decisions)
                    .where(condition)
                    .values(
                        state=state,
                        outcome=outcome,
                        context=json.dumps(dict(context)),
                        updated=_next(conn, decision_id),
                    )
                ).rowcount
                if changed != 1:
                    return False
                _add_event(conn, decision_id, *event)
                return True

        return _dialect.retry_locked(write)

    def add_event(
        self, decision_id: int, kind: str, message: str, details: Mapping[str, Any]
    ) -> None:
        def write() -> None:
            with self._write() as conn:
                _add_event(conn, decision_id, kind, message, details)

        _dialect.retry_locked(write)

    def get_decision(self, decision_id: int) -> DecisionRecord:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.decisions).where(t.decisions.c.id == decision_id)).first()
        if row is None:
            raise NotFound(f"Decision {decision_id} not found. See `ferry decisions list`.")
        return _decision(row)

    def list_decisions(
        self, *, policy: str | None = None, open_only: bool = False, limit: int | None = None
    ) -> list[DecisionRecord]:
        """Newest first."""
        c = t.decisions.c
        query = select(t.decisions).order_by(c.id.desc())
        if policy is not None:
            query = query.where(c.policy == policy)
        if open_only:
            query = query.where(c.outcome.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self._store.engine.connect() as conn:
            return [_decision(r) for r in conn.execute(query).all()]

    def count_since(self, policy: str, since_ms: int) -> int:
        c = t.decisions.c
        with self._store.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(c.policy == policy, c.created >= since_ms)
                ).scalar_one()
            )

    def events(self, decision_id: int) -> list[DecisionEvent]:
        e = t.decision_events.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.decision_events).where(e.decision_id == decision_id).order_by(e.seq)
            ).all()
        return [
            DecisionEvent(r.decision_id, r.seq, r.time, r.kind, r.message, json.loads(r.details))
            for r in rows
        ]

    def approve(self, decision_id: int, *, user: str, reason: str = "") -> DecisionRecord:
        """Let a decision waiting for approval roll out; the decision as it is now.

        Raises:
            NotFound: no such decision.
            Conflict: it is not waiting for approval.
        """
        record = self._awaiting(decision_id)
        context = {**record.context, "approved_by": user}
        message = f"approved by {user}" + (f": {reason}" if reason else "")
        event = ("approved", message, {"user": user})
        if not self.advance(decision_id, record.state, "approved", context, event):
            raise Conflict(_CHANGED.format(id=decision_id))
        return self.get_decision(decision_id)

    def reject(self, decision_id: int, *, user: str, reason: str = "") -> DecisionRecord:
        """End a decision waiting for approval; the champion keeps serving.

        Raises:
            NotFound: no such decision.
            Conflict: it is not waiting for approval.
        """
        record = self._awaiting(decision_id)
        message = f"rejected by {user}" + (f": {reason}" if reason else "")
        event = ("rejected", message, {"user": user, "reason": reason})
        if not self.advance(
            decision_id, record.state, "done", record.context, event, outcome="rejected"
        ):
            raise Conflict(_CHANGED.format(id=decision_id))
        return self.get_decision(decision_id)

    def _awaiting(self, decision_id: int) -> DecisionRecord:
        record = self.get_decision(decision_id)
        if record.state != "awaiting_approval":
            raise Conflict(
                f"Decision {decision_id} is {record.outcome or record.state}, not waiting for "
                f"approval; see `ferry decisions show {decision_id}`."
            )
        return record

    # -- policy watermarks -------------------------------------------------------------------

    def policy_state(self, policy: str) -> dict[str, Any]:
        with self._store.engine.connect() as conn:
            value = conn.execute(
                select(t.policy_state.c.state).where(t.policy_state.c.policy == policy)
            ).scalar()
        return {} if value is None else dict(json.loads(value))

    def set_policy_state(self, policy: str, state: Mapping[str, Any]) -> None:
        def write() -> None:
            with self._write() as conn:
                _dialect.upsert(
                    conn,
                    t.policy_state,
                    [{"policy": policy, "state": json.dumps(dict(state))}],
                    keys=["policy"],
                )

        _dialect.retry_locked(write)

    # -- the lease -------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``seconds``: True when ``holder`` has it.

        The lease is free when nobody holds it or its holder let it expire. The change is
        an UPDATE conditioned on the row that was read (or an INSERT that fails on a
        duplicate key), so of two agents racing for it exactly one wins. Times are the
        database's clock, so agents on hosts whose clocks differ still agree."""
        c = t.agent_leases.c

        def write() -> bool:
            with self._write() as conn:
                now = _clock(conn)
                expires = now + int(seconds * 1000)
                row = conn.execute(select(t.agent_leases).where(c.name == name)).first()
                if row is None:
                    conn.execute(
                        insert(t.agent_leases).values(name=name, holder=holder, expires=expires)
                    )
                    return True
                if row.holder != holder and row.expires > now:
                    return False
                changed = conn.execute(
                    update(t.agent_leases)
                    .where(c.name == name, c.holder == row.holder, c.expires == row.expires)
                    .values(holder=holder, expires=expires)
                ).rowcount
                return bool(changed == 1)

        try:
            return _dialect.retry_locked(write)
        except SAIntegrityError:
            return False  # another agent inserted the lease first

    def release_lease(self, name: str, holder: str) -> None:
        c = t.agent_leases.c

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    update(t.agent_leases)
                    .where(c.name == name, c.holder == holder)
                    .values(expires=0)
                )

        _dialect.retry_locked(write)

    def lease_holder(self, name: str) -> tuple[str, int] | None:
        """Who holds ``name`` and until when (ms), if anyone does now."""
        c = t.agent_leases.c
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.agent_leases).where(c.name == name)).first()
            now = _clock(conn)
        if row is None or row.expires <= now:
            return None
        return str(row.holder), int(row.expires)


def _add_event(
    conn: Any, decision_id: int, kind: str, message: str, details: Mapping[str, Any]
) -> None:
    e = t.decision_events.c
    seq = conn.execute(
        select(func.coalesce(func.max(e.seq), 0)).where(e.decision_id == decision_id)
    ).scalar_one()
    conn.execute(
        insert(t.decision_events).values(
            decision_id=decision_id,
            seq=int(seq) + 1,
            time=_now(),
            kind=kind,
            message=message,
            details=json.dumps(dict(details), default=str),
        )
    )


def _decision(row: Any) -> DecisionRecord:
    return DecisionRecord(
        int(row.id),
        row.policy,
        row.deployment,
        row.state,
        row.outcome,
        json.loads(row.context),
        int(row.created),
        int(row.updated),
    )


def _next(conn: Any, decision_id: int) -> int:
    """Now, in ms, but always past the decision's last write: ``updated`` is its version."""
    last = conn.execute(
        select(t.decisions.c.updated).where(t.decisions.c.id == decision_id)
    ).scalar()
    return max(_now(), int(last or 0) + 1)


def _clock(conn: Any) -> int:
    """The database server's time in ms (SQLite's server is this host)."""
    if conn.dialect.name == "postgresql":
        return int(
            conn.exec_driver_sql("SELECT extract(epoch FROM clock_timestamp()) * 1000").scalar()
        )
    return _now()


def _now() -> int:
    return int(time.time() * 1000)
