"""The review store in SQLite and PostgreSQL: a prediction is queued once, open items come
least confident first, and a label is written with the feedback in one go."""

from __future__ import annotations

import json

import pytest

from ferryml.errors import Conflict, NotFound
from ferryml.store.review import ReviewItem, ReviewQueue
from ferryml.store.sql import SqlStore
from ferryml.store.sql_predictions import SqlPredictionStore
from ferryml.store.sql_review import SqlReviewStore


def _item(pid: str, score: float | None, deployment: str = "churn") -> ReviewItem:
    return ReviewItem(deployment, pid, 1_000, "confidence", score, {"a": 1.5}, 1, "m", 2)


def test_items_are_queued_once_and_labelled_with_their_feedback(store_url: str) -> None:
    review = SqlReviewStore(SqlStore(store_url).open())
    try:
        queue = review.set_queue(ReviewQueue("churn", "confidence", 3, 60, (0, 1)), user="ann")
        assert (queue.strategy, queue.choices, queue.user) == ("confidence", (0, 1), "ann")
        assert review.add_items([_item("p1", 0.9), _item("p2", 0.6), _item("p3", None)]) == 3
        assert review.add_items([_item("p2", 0.1), _item("p4", 0.7)]) == 1  # p2 stays
        assert review.add_items([_item("p1", 0.5, deployment="other")]) == 1
        assert [i.prediction_id for i in review.list_items("churn")] == ["p2", "p4", "p1", "p3"]
        assert review.queued_ids("churn", 0) == {"p1", "p2", "p3", "p4"}
        item = review.label("churn", "p2", json.dumps("yes"), user="bob")
        assert (item.state, item.label, item.user, item.features) == (
            "labelled",
            '"yes"',
            "bob",
            {"a": 1.5},
        )
        review.skip("churn", "p4", user="bob")
        with pytest.raises(Conflict, match="was skipped by bob"):
            review.skip("churn", "p4", user="cy")
        with pytest.raises(NotFound, match="'p9' is not in the review queue"):
            review.label("churn", "p9", "1", user="bob")
        feedback = SqlPredictionStore(review.sql).list_feedback("churn")
        assert [(f.prediction_id, f.label, f.user, f.prediction_time) for f in feedback] == [
            ("p2", '"yes"', "bob", 1_000)
        ]
        assert [i.prediction_id for i in review.list_items("churn", state=None)][:2] == ["p4", "p2"]
    finally:
        review.close()
