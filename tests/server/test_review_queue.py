"""The review queue keeps one contract in SQL and over a team server: a deployment's queue
chooses its least confident predictions, the ones its shadow disagreed on, or a random
sample; a label given to an item is the prediction's feedback, with who gave it, which is
what retraining policies count; through the server, only a maintainer sets a queue up and a
reader changes nothing. Beside it, what the deployment and model pages read from the same
world: a deployment's traffic per route, and a prediction's lineage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from review_world import deployment, train
from team_world import TeamServer

import ferryml as ferry
from ferryml._identity import current_user
from ferryml.config import Settings
from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.monitoring.review import configure_review, fill_review_queue, label_prediction
from ferryml.predictions import record_feedback
from ferryml.store.factory import (
    open_automation_store,
    open_prediction_store,
    open_review_store,
)
from ferryml.store.review import ReviewQueue

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(
    sqlite_team_server: TeamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The SQL store's settings, with models v1 and v2 registered."""
    server = sqlite_team_server
    home = tmp_path_factory.mktemp("world") / "home"
    settings = Settings(home=home, store_url=server.store_url, artifacts_url=server.artifacts_url)
    train(settings)
    yield settings
    ferry.configure(home=home, store=server.store_url, artifacts=server.artifacts_url)


@pytest.fixture(params=["sql", "http"])
def settings(
    request: pytest.FixtureRequest, world: Settings, sqlite_team_server: TeamServer
) -> Settings:
    """A client of the SQL store itself, or of the team server over it, as a maintainer."""
    if request.param == "sql":
        return world
    server = sqlite_team_server
    return Settings(
        home=world.home,
        store_url=server.url,
        artifacts_url=server.url,
        token=server.tokens["maintainer"],
    )


def _user(settings: Settings) -> str:
    return "maintainer" if settings.store_url.startswith("http") else current_user()


def test_a_queue_is_kept_with_who_set_it_and_bad_settings_are_refused(
    world: Settings, settings: Settings
) -> None:
    name, _ = deployment(world, n=4)
    store = open_review_store(settings)
    try:
        with pytest.raises(NotFound, match=f"Deployment '{name}' has no review queue"):
            store.get_queue(name)
        queue = configure_review(name, strategy="random", size=3, choices=[0, 1], settings=settings)
        assert (queue.strategy, queue.size, queue.choices, queue.user) == (
            "random",
            3,
            (0, 1),
            _user(settings),
        )
        assert store.get_queue(name) == queue
        assert queue in store.list_queues()
    finally:
        store.close()
    with pytest.raises(
        InvalidArgument, match="strategy 'loudest' is unknown; use one of confidence"
    ):
        configure_review(name, strategy="loudest", settings=settings)
    with pytest.raises(InvalidArgument, match="size 0 is out of range; use 1 to 1000"):
        configure_review(name, size=0, settings=settings)


def test_confidence_chooses_the_least_sure_answers_and_not_the_shadows(
    world: Settings, settings: Settings
) -> None:
    name, sent = deployment(world)
    configure_review(name, strategy="confidence", size=5, settings=settings)
    assert fill_review_queue(name, settings=settings) == 5
    assert fill_review_queue(name, settings=settings) == 0  # full
    store = open_review_store(settings)
    try:
        items = store.list_items(name)
    finally:
        store.close()
    expected = sent.nsmallest(5, "p1")
    assert [i.prediction_id for i in items] == expected["id"].tolist()
    assert [i.score for i in items] == pytest.approx(expected["p1"].tolist())
    first = expected.iloc[0]
    assert items[0].features == pytest.approx({"a": first["a"], "b": first["b"]})
    assert (items[0].prediction, items[0].model, items[0].version) == (
        int(first["v1"]),
        "reviewed",
        1,
    )
    assert {i.reason for i in items} == {"confidence"}


def test_disagreement_chooses_where_the_shadow_answered_otherwise(
    world: Settings, settings: Settings
) -> None:
    name, sent = deployment(world)
    differ = sent[sent["v1"] != sent["v2"]]
    assert 3 < len(differ) < len(sent)
    configure_review(name, strategy="disagreement", size=100, settings=settings)
    assert fill_review_queue(name, settings=settings) == len(differ)
    store = open_review_store(settings)
    try:
        items = store.list_items(name)
    finally:
        store.close()
    assert {i.prediction_id for i in items} == set(differ["id"])
    shadows = dict(zip(differ["id"], differ["v2"].astype(int), strict=True))
    assert all(i.shadow == shadows[i.prediction_id] != i.prediction for i in items)


def test_random_skips_labelled_predictions_and_tops_the_queue_up(
    world: Settings, settings: Settings
) -> None:
    name, sent = deployment(world, n=12)
    labelled = sent["id"].tolist()[:4]
    record_feedback([(i, 1) for i in labelled], settings=world)
    configure_review(name, strategy="random", size=5, settings=settings)
    assert fill_review_queue(name, settings=settings) == 5
    store = open_review_store(settings)
    try:
        chosen = {i.prediction_id for i in store.list_items(name)}
        assert not chosen & set(labelled) and chosen <= set(sent["id"])
        store.skip(name, sorted(chosen)[0], user="")
        assert fill_review_queue(name, settings=settings) == 1
        every = {i.prediction_id for i in store.list_items(name, state=None)}
    finally:
        store.close()
    assert len(every) == 6 and not every & set(labelled)
    assert fill_review_queue(name, settings=settings, now=time.time() + 3600 * 24 * 8) == 0


def test_a_label_becomes_feedback_with_who_gave_it_which_policies_count(
    world: Settings, settings: Settings
) -> None:
    name, _ = deployment(world, n=6)
    configure_review(name, strategy="random", size=3, settings=settings)
    fill_review_queue(name, settings=settings)
    before = int(time.time() * 1000) - 1
    store = open_review_store(settings)
    try:
        first, second, third = store.list_items(name)
        item = label_prediction(name, first.prediction_id, "churned", settings=settings)
        assert (item.state, item.label, item.user) == ("labelled", '"churned"', _user(settings))
        label_prediction(name, second.prediction_id, 1, settings=settings)
        skipped = store.skip(name, third.prediction_id, user=current_user())
        assert (skipped.state, skipped.user) == ("skipped", _user(settings))
        with pytest.raises(Conflict, match="was skipped by"):
            store.skip(name, third.prediction_id, user=current_user())
        with pytest.raises(NotFound, match="'nope' is not in the review queue"):
            label_prediction(name, "nope", 1, settings=settings)
        with pytest.raises(InvalidArgument, match="A label must be a number"):
            label_prediction(name, second.prediction_id, None, settings=settings)
        assert store.list_items(name) == []
        done = store.list_items(name, state="labelled")
        assert {i.prediction_id for i in done} == {first.prediction_id, second.prediction_id}
    finally:
        store.close()
    predictions = open_prediction_store(settings)
    try:  # what a new_labels trigger counts
        fresh = predictions.list_feedback(name, recorded_after=before)
    finally:
        predictions.close()
    assert {(f.prediction_id, json.loads(f.label), f.user) for f in fresh} == {
        (first.prediction_id, "churned", _user(settings)),
        (second.prediction_id, 1, _user(settings)),
    }


def test_through_the_server_a_reader_changes_nothing_and_a_writer_labels(
    world: Settings, sqlite_team_server: TeamServer
) -> None:
    server = sqlite_team_server
    name, _ = deployment(world, n=5)
    with server.http("writer") as writer, server.http("reader") as reader:
        refused = writer.put(f"/api/v1/review/{name}", json={"strategy": "random"})
        assert (
            refused.status_code == 403 and "needs maintainer" in refused.json()["error"]["message"]
        )
        with server.http("maintainer") as maintainer:
            bad = maintainer.put(f"/api/v1/review/{name}", json={"strategy": "loud", "size": 2})
            assert bad.status_code == 422 and "strategy" in bad.json()["error"]["message"]
            ok = maintainer.put(f"/api/v1/review/{name}", json={"strategy": "random", "size": 2})
            assert ok.status_code == 200, ok.text
        assert reader.post(f"/api/v1/review/{name}/fill").status_code == 403
        filled = writer.post(f"/api/v1/review/{name}/fill")
        assert filled.json() == {"added": 2}
        items = reader.get(f"/api/v1/review/{name}/items").json()
        assert len(items) == 2
        path = f"/api/v1/review/{name}/items/{items[0]['prediction_id']}"
        assert reader.post(f"{path}/label", json={"label": 1}).status_code == 403
        labelled = writer.post(f"{path}/label", json={"label": 1})
        assert labelled.json()["user"] == "writer" and labelled.json()["state"] == "labelled"
        missing = writer.post(f"/api/v1/review/{name}/items/nope/label", json={"label": 1})
        assert (
            missing.status_code == 404
            and "not in the review queue" in missing.json()["error"]["message"]
        )
        none = writer.post("/api/v1/review/nowhere/fill")
        assert none.status_code == 404 and "has no review queue" in none.json()["error"]["message"]
        feedback = reader.get("/api/v1/predictions/feedback", params={"deployment": name}).json()
    assert [(f["prediction_id"], f["user"]) for f in feedback] == [
        (items[0]["prediction_id"], "writer")
    ]


def test_confidence_needs_class_probabilities(world: Settings, tmp_path: Path) -> None:
    import pandas as pd

    from ferryml.monitoring.review import choose_for_review

    frame = pd.DataFrame(
        {"id": ["x"], "time": [pd.Timestamp.now(tz="UTC")], "deployment": ["d"], "route": ["v1"],
         "model": ["m"], "version": [1], "latency_ms": [1.0], "a": [0.5], "prediction": [1.0]}
    )  # fmt: skip

    class Regressor:
        has_proba = False

    queue = ReviewQueue("d", "confidence")
    with pytest.raises(InvalidArgument, match="gives no class probabilities.*'random' or"):
        choose_for_review(frame, queue, 1, load=lambda name, version: Regressor())


def test_a_deployments_traffic_is_counted_per_route_from_its_log(
    world: Settings, sqlite_team_server: TeamServer
) -> None:
    name, _ = deployment(world, n=30)  # logged over the last 30 s, 2 ms on v1, 3 ms on v2
    with sqlite_team_server.http("reader") as reader:
        found = reader.get(
            f"/api/v1/deployments/{name}/traffic", params={"span_s": 120, "buckets": 4}
        )
        routes = {r["route"]: r for r in found.json()}
        assert set(routes) == {"v1", "v2"}
        assert routes["v1"]["requests"] == 30 and routes["v1"]["rate"] == pytest.approx(30 / 120)
        assert (routes["v1"]["p50_ms"], routes["v2"]["p99_ms"]) == pytest.approx((2.0, 3.0))
        assert [b["requests"] for b in routes["v2"]["buckets"]][:2] == [0, 0]  # 30 s a slot
        assert sum(b["requests"] for b in routes["v2"]["buckets"]) == 30
        assert reader.get("/api/v1/deployments/nothing/traffic").json() == []
        bad = reader.get(f"/api/v1/deployments/{name}/traffic", params={"span_s": 0})
        assert bad.status_code == 422 and "span_s" in bad.json()["error"]["message"]


def test_a_predictions_lineage_reaches_the_run_that_trained_its_model(
    world: Settings, sqlite_team_server: TeamServer
) -> None:
    name, sent = deployment(world, n=2)
    prediction = sent["id"].iloc[0]
    with sqlite_team_server.http("reader") as reader:
        graph = reader.get(f"/api/v1/predictions/{prediction}/lineage").json()
        missing = reader.get("/api/v1/predictions/nope/lineage")
        version = reader.get("/api/v1/models/reviewed/versions/1/lineage").json()
    kinds = [n["kind"] for n in graph["nodes"]]
    assert kinds[:3] == ["prediction", "model_version", "run"]
    assert graph["nodes"][0]["detail"] == f"deployment {name}"
    assert graph["nodes"][1]["key"] == "reviewed/1"
    run = graph["nodes"][2]["key"]
    assert [prediction, "reviewed/1"] in graph["edges"] and ["reviewed/1", run] in graph["edges"]
    assert version["nodes"] == graph["nodes"][1:]
    assert missing.status_code == 404 and "No logged prediction has id 'nope'" in missing.text


def test_a_new_labels_policy_counts_the_labels_given_in_the_queue(world: Settings) -> None:
    from ferryml.automation import Agent
    from ferryml.automation.policy import Policy

    name, _ = deployment(world, n=4)
    configure_review(name, strategy="random", size=2, settings=world)
    fill_review_queue(name, settings=world)
    policy = Policy.from_dict(
        "relabelled",
        {
            "deployment": name,
            "triggers": [{"new_labels": 2}],
            "retrain": {"pipeline": "nowhere:training"},
        },
    )
    with Agent(world, {"relabelled": policy}, monitors=False, schedules=False) as agent:
        assert agent.tick().created == []  # the trigger's first pass sets its watermark
        store = open_review_store(world)
        try:
            for item in store.list_items(name):
                label_prediction(name, item.prediction_id, 1, settings=world)
        finally:
            store.close()
        created = agent.tick().created
    assert len(created) == 1
    automation = open_automation_store(world)
    try:
        trigger = automation.events(created[0])[0]
    finally:
        automation.close()
    assert trigger.details["labels"] == 2 and "2 new labels" in trigger.message


def test_the_agent_tops_review_queues_up_each_pass(world: Settings) -> None:
    from ferryml.automation import Agent

    name, _ = deployment(world, n=6)
    configure_review(name, strategy="confidence", size=4, settings=world)
    with Agent(world, {}, schedules=False) as agent:
        assert agent.tick().reviews >= 4  # other tests' queues may take some too
        store = open_review_store(world)
        try:
            assert len(store.list_items(name)) == 4
            label_prediction(name, store.list_items(name)[0].prediction_id, 0, settings=world)
        finally:
            store.close()
        second = agent.tick()
    assert second.errors == [] and second.reviews >= 1
