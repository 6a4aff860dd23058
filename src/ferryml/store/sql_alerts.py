"""Alerts over the same SQL database: the history of alerts fired and resolved, the
outcome of each delivery to a channel, and where each (monitor, rule) stands, so that a
restarted monitor carries on counting windows where the last one stopped."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, true, update

from ferryml.errors import InvalidArgument, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.loop import Alert, AlertState, Delivery, Step
from ferryml.store.sql import StorePart

__all__ = ["Alert", "AlertState", "Delivery", "SqlAlertStore"]


class SqlAlertStore(StorePart):
    """Alerts in an opened ``SqlStore``'s database.

    Example:
        >>> alerts = SqlAlertStore(SqlStore("sqlite:///.ferry/ferry.db").open())
        >>> alerts.list_alerts(monitor="churn")
    """

    def transition(self, monitor: str, rule: str, step: Step) -> Alert | None:
        """Apply ``step`` to the rule's state in one transaction: read the state (locking
        it against a concurrent writer), write the state ``step`` returns and the alert it
        returns, if any. ``step`` must be pure: it may run again when SQLite is busy.

        Returns:
            The alert recorded, with its id, or None.
        """
        s = t.alert_state.c
        key = (s.monitor == monitor) & (s.rule == rule)

        def write() -> Alert | None:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                _dialect.insert_ignore(
                    conn,
                    t.alert_state,
                    [{"monitor": monitor, "rule": rule, "consecutive": 0, "firing": False}],
                )
                row = conn.execute(select(t.alert_state).where(key).with_for_update()).one()
                state, alert = step(_state(row))
                conn.execute(
                    update(t.alert_state)
                    .where(key)
                    .values(
                        consecutive=state.consecutive,
                        firing=state.firing,
                        last_fired=state.last_fired,
                        reference=state.reference,
                        last_window_end=state.last_window_end,
                    )
                )
                if alert is None:
                    return None
                values = {
                    f.name: getattr(alert, f.name)
                    for f in dataclasses.fields(alert)
                    if f.name not in ("id", "deliveries")
                }
                inserted = conn.execute(t.alerts.insert().values(**values)).inserted_primary_key
                assert inserted is not None
                return dataclasses.replace(alert, id=int(inserted[0]))

        return _dialect.retry_locked(write)

    def get_state(self, monitor: str, rule: str) -> AlertState:
        """The rule's state for the monitor; a fresh one if it never saw a window."""
        s = t.alert_state.c
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(t.alert_state).where((s.monitor == monitor) & (s.rule == rule))
            ).first()
        return AlertState(monitor, rule) if row is None else _state(row)

    def record_delivery(self, alert_id: int, delivery: Delivery) -> None:
        """Record (or replace) the outcome of sending an alert to a channel."""
        row = {"alert_id": alert_id, **dataclasses.asdict(delivery)}

        def write() -> None:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                _dialect.upsert(conn, t.alert_deliveries, [row], ["alert_id", "channel"])

        _dialect.retry_locked(write)

    def get_alert(self, alert_id: int) -> Alert:
        """Raises:
        NotFound: no alert has this id."""
        found = self._alerts(t.alerts.c.id == alert_id, limit=1)
        if not found:
            raise NotFound(f"Alert {alert_id} not found. See `ferry alerts list`.")
        return found[0]

    def list_alerts(
        self, *, monitor: str | None = None, rule: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, newest first, with their deliveries.

        Raises:
            InvalidArgument: ``limit`` is not positive.
        """
        if limit < 1:
            raise InvalidArgument(f"limit must be at least 1; got {limit}.")
        a = t.alerts.c
        condition: Any = true()
        if monitor is not None:
            condition = a.monitor == monitor
        if rule is not None:
            condition = (a.rule == rule) & condition
        return self._alerts(condition, limit=limit)

    def _alerts(self, condition: Any, *, limit: int) -> list[Alert]:
        a, d = t.alerts.c, t.alert_deliveries.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(t.alerts).where(condition).order_by(a.id.desc()).limit(limit)
            ).all()
            ids = [r.id for r in rows]
            sent = conn.execute(
                select(t.alert_deliveries).where(d.alert_id.in_(ids)).order_by(d.channel)
            ).all()
        deliveries: dict[int, list[Delivery]] = {i: [] for i in ids}
        for r in sent:
            deliveries[r.alert_id].append(
                Delivery(r.channel, r.attempts, bool(r.ok), r.error, r.time)
            )
        return [_alert(r, deliveries[r.id]) for r in rows]


def _state(row: Any) -> AlertState:
    return AlertState(
        monitor=row.monitor,
        rule=row.rule,
        consecutive=row.consecutive,
        firing=bool(row.firing),
        last_fired=row.last_fired,
        reference=row.reference,
        last_window_end=row.last_window_end,
    )


def _alert(row: Any, deliveries: Iterable[Delivery]) -> Alert:
    return Alert(
        id=row.id,
        time=row.time,
        monitor=row.monitor,
        rule=row.rule,
        metric=row.metric,
        op=row.op,
        value=row.value,
        threshold=row.threshold,
        reference=row.reference,
        state=row.state,
        message=row.message,
        window_start=row.window_start,
        window_end=row.window_end,
        deliveries=tuple(deliveries),
    )
