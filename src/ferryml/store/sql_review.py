"""``ReviewStore`` in the same SQL database as the other stores: review queues, their
items, and the feedback a label becomes, written in the same transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, select, update

from ferryml.errors import Conflict, NotFound
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.review import ReviewItem, ReviewQueue
from ferryml.store.sql import StorePart

__all__ = ["SqlReviewStore"]

_CHUNK = 1000  # bound parameters a statement


class SqlReviewStore(StorePart):
    """Review queues and items in an opened ``SqlStore``'s database.

    Example:
        >>> review = SqlReviewStore(SqlStore("sqlite:///.ferry/ferry.db").open())
    """

    def set_queue(self, queue: ReviewQueue, *, user: str) -> ReviewQueue:
        row = {
            "deployment": queue.deployment,
            "spec": json.dumps(queue.spec()),
            "last_update_time": _now(),
            "user_name": user,
        }

        def write() -> None:
            with self._write() as conn:
                _dialect.upsert(conn, t.review_queues, [row], ("deployment",))

        _dialect.retry_locked(write)
        return self.get_queue(queue.deployment)

    def get_queue(self, deployment: str) -> ReviewQueue:
        q = t.review_queues.c
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.review_queues).where(q.deployment == deployment)).first()
        if row is None:
            raise NotFound(
                f"Deployment {deployment!r} has no review queue; a maintainer sets one up on "
                f"the review page, or with PUT /api/v1/review/{deployment}."
            )
        return _queue(row)

    def list_queues(self) -> list[ReviewQueue]:
        q = t.review_queues.c
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(t.review_queues).order_by(q.deployment))
            return [_queue(r) for r in rows]

    def add_items(self, items: Sequence[ReviewItem]) -> int:
        now = _now()
        rows = [_item_row(item, now) for item in items]
        i = t.review_items.c

        def insert() -> int:
            added = 0
            with self._write() as conn:
                for deployment in dict.fromkeys(r["deployment"] for r in rows):
                    mine = [r for r in rows if r["deployment"] == deployment]
                    known: set[str] = set()
                    for start in range(0, len(mine), _CHUNK):
                        ids = [r["prediction_id"] for r in mine[start : start + _CHUNK]]
                        found = conn.execute(
                            select(i.prediction_id).where(
                                i.deployment == deployment, i.prediction_id.in_(ids)
                            )
                        )
                        known.update(found.scalars())
                    fresh = list(
                        {
                            r["prediction_id"]: r for r in mine if r["prediction_id"] not in known
                        }.values()
                    )
                    _dialect.insert_ignore(conn, t.review_items, fresh)
                    added += len(fresh)
            return added

        return _dialect.retry_locked(insert) if rows else 0

    def list_items(
        self, deployment: str, *, state: str | None = "open", limit: int = 100
    ) -> list[ReviewItem]:
        i = t.review_items.c
        stmt = select(t.review_items).where(i.deployment == deployment)
        if state is not None:
            stmt = stmt.where(i.state == state)
        if state == "open":  # the most urgent first: no score (random) after the scored
            order = [case((i.score.is_(None), 1), else_=0), i.score, i.prediction_time.desc()]
        else:
            order = [case((i.resolved_time.is_(None), 1), else_=0), i.resolved_time.desc()]
        with self._store.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(*order, i.prediction_id).limit(limit))
            return [_item(r) for r in rows]

    def queued_ids(self, deployment: str, since: int) -> set[str]:
        i = t.review_items.c
        stmt = select(i.prediction_id).where(i.deployment == deployment, i.prediction_time >= since)
        with self._store.engine.connect() as conn:
            return set(conn.execute(stmt).scalars())

    def label(self, deployment: str, prediction_id: str, label: str, *, user: str) -> ReviewItem:
        def write() -> None:
            now = _now()
            with self._write() as conn:
                item = _get(conn, deployment, prediction_id)
                conn.execute(
                    update(t.review_items)
                    .where(*_key(deployment, prediction_id))
                    .values(state="labelled", label=label, user_name=user, resolved_time=now)
                )
                feedback = {
                    "prediction_id": prediction_id,
                    "deployment": deployment,
                    "prediction_time": item.prediction_time,
                    "label": label,
                    "time": now,
                    "user_name": user,
                }
                _dialect.upsert(conn, t.prediction_feedback, [feedback], ("prediction_id",))

        _dialect.retry_locked(write)
        return self._item(deployment, prediction_id)

    def skip(self, deployment: str, prediction_id: str, *, user: str) -> ReviewItem:
        def write() -> None:
            with self._write() as conn:
                item = _get(conn, deployment, prediction_id)
                if item.state != "open":
                    raise Conflict(
                        f"Prediction {prediction_id!r} was {item.state} by {item.user or 'someone'}"
                        " already; reload the review queue."
                    )
                conn.execute(
                    update(t.review_items)
                    .where(*_key(deployment, prediction_id))
                    .values(state="skipped", user_name=user, resolved_time=_now())
                )

        _dialect.retry_locked(write)
        return self._item(deployment, prediction_id)

    def _item(self, deployment: str, prediction_id: str) -> ReviewItem:
        with self._store.engine.connect() as conn:
            return _get(conn, deployment, prediction_id)


def _now() -> int:
    return int(time.time() * 1000)


def _key(deployment: str, prediction_id: str) -> tuple[Any, Any]:
    i = t.review_items.c
    return i.deployment == deployment, i.prediction_id == prediction_id


def _get(conn: Any, deployment: str, prediction_id: str) -> ReviewItem:
    row = conn.execute(select(t.review_items).where(*_key(deployment, prediction_id))).first()
    if row is None:
        raise NotFound(
            f"Prediction {prediction_id!r} is not in the review queue of deployment "
            f"{deployment!r}; reload the queue."
        )
    return _item(row)


def _queue(row: Any) -> ReviewQueue:
    spec = json.loads(row.spec)
    return ReviewQueue(
        deployment=row.deployment,
        strategy=spec["strategy"],
        size=int(spec["size"]),
        lookback_s=int(spec["lookback_s"]),
        choices=tuple(spec.get("choices", ())),
        updated=row.last_update_time,
        user=row.user_name,
    )


def _item_row(item: ReviewItem, now: int) -> dict[str, Any]:
    body = {
        "features": item.features,
        "prediction": item.prediction,
        "model": item.model,
        "version": item.version,
        "shadow": item.shadow,
    }
    return {
        "deployment": item.deployment,
        "prediction_id": item.prediction_id,
        "prediction_time": item.prediction_time,
        "reason": item.reason,
        "score": item.score,
        "body": json.dumps(body, default=str),
        "added_time": item.added or now,
        "state": "open",
        "label": None,
        "user_name": "",
        "resolved_time": None,
    }


def _item(row: Any) -> ReviewItem:
    body = json.loads(row.body)
    return ReviewItem(
        deployment=row.deployment,
        prediction_id=row.prediction_id,
        prediction_time=row.prediction_time,
        reason=row.reason,
        score=row.score,
        features=body["features"],
        prediction=body["prediction"],
        model=body["model"],
        version=int(body["version"]),
        shadow=body["shadow"],
        added=row.added_time,
        state=row.state,
        label=row.label,
        user=row.user_name,
        resolved=row.resolved_time,
    )
