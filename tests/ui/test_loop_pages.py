"""The loop's pages in Chromium (data, pipelines, models, deployments, monitoring,
decisions, the review queue): each renders with no console error and no serious
accessibility violation; a maintainer promotes a version, rolls a deployment back and
approves a decision from the pages, and the store records who; a reader sees no button
and the server refuses them; a label given in the review queue reaches the feedback; a
deployment's figures update without a reload."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from ui_world import DEPLOYMENT, MODEL, build

from ferryml.config import Settings
from ferryml.serving.predlog import PredictionLog
from ferryml.tracking.client import FerryClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # builds the whole loop: 2 min in all


def ui_data(client: FerryClient) -> dict[str, Any]:
    return build(client.settings, client.settings.home.parent)


def _pages(server: Any) -> list[tuple[str, str, str]]:
    data = server.data
    with server.http("reader") as http:
        window = http.get("/api/v1/monitors/churn-watch/windows").json()[-1]["window_end"]
    return [
        ("/data", "data", "#datasets"),
        ("/data/churn", "dataset", "#versions"),
        ("/data/churn/versions/2?against=1", "dataset-diff", "#shifts"),
        ("/data/churn/versions/1?validate=true", "dataset-validate", "p.error"),
        ("/pipelines", "pipelines", "#pipeline-runs"),
        (f"/pipelines/{data['pipeline_run']}", "pipeline", "svg.graph .node.finished"),
        (f"/pipelines/{data['failed_run']}", "pipeline-failed", "pre.log.error"),
        ("/models", "models", "text=" + MODEL),
        (f"/models/{MODEL}", "model", "#audit"),
        (f"/models/{MODEL}/versions/2", "model-version", "figure.card img"),
        ("/deployments", "deployments", "text=" + DEPLOYMENT),
        (f"/deployments/{DEPLOYMENT}", "deployment", "#routes svg.bars"),
        ("/monitors", "monitors", "text=churn-watch"),
        ("/monitors/churn-watch", "monitor", "svg.line-chart"),
        (f"/monitors/churn-watch/windows/{window}", "monitor-window", "#drift"),
        ("/decisions", "decisions", "#decisions"),
        (f"/decisions/{data['decision']}", "decision", "#timeline"),
        ("/review", "review", "#queues"),
        (f"/review/{DEPLOYMENT}", "review-queue", ".review-item"),
        (f"/predictions/{data['prediction']}", "prediction", "svg.graph"),
    ]


def test_every_loop_page_renders_and_links_on(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("maintainer")
    for path, name, ready in _pages(ui_server):
        visit(page, path, name, ready=ready)
    # the next thing a person asks about is a link away
    visit(page, f"/models/{MODEL}/versions/1", "model-version-1", ready="svg.graph")
    hrefs = page.eval_on_selector_all(
        "svg.graph a", "links => links.map(a => a.getAttribute('href'))"
    )
    assert any(h.startswith("/runs/") for h in hrefs) and "/data/churn/versions/1" in hrefs
    page.close()


def test_a_deployments_figures_update_without_a_reload(
    signed_in: Any, visit: Any, ui_server: Any
) -> None:
    page = signed_in("reader")
    visit(page, f"/deployments/{DEPLOYMENT}", "deployment-live", ready="#routes svg.bars")
    cell = "#routes tr[data-route=v1] td[data-figure=p99_ms]"
    assert float(page.inner_text(cell).split()[0]) < 10
    settings = Settings(
        home=ui_server.home.parent / "traffic", store_url=ui_server.store_url,
        artifacts_url=ui_server.artifacts_url,
    )  # fmt: skip
    with PredictionLog(settings) as log:
        frame = __import__("pandas").DataFrame({"a": [0.1] * 7, "b": [0.2] * 7})
        ids = [uuid.uuid4().hex for _ in range(7)]
        log.record(DEPLOYMENT, "v1", MODEL, 1, ids, frame, [1] * 7, 500.0, time=time.time())
    page.wait_for_function(  # seven slow requests move the p99 latency
        "(cell) => document.querySelector(cell).textContent == '500 ms'", arg=cell, timeout=15_000
    )
    page.close()


def test_a_maintainer_promotes_and_rolls_back_from_the_pages(
    signed_in: Any, visit: Any, ui_server: Any
) -> None:
    with ui_server.http("reader") as http:
        champion = http.get(f"/api/v1/models/{MODEL}/aliases/champion").json()["version"]
    other = 2 if champion == 1 else 1
    page = signed_in("maintainer")
    visit(page, f"/models/{MODEL}/versions/{other}", "promote", ready="#promote")
    page.select_option("#promote select[name=alias]", "champion")
    page.fill("#promote input[name=reason]", "better on last week's labels")
    page.click("#promote button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#aliases').textContent.includes('champion')"
    )
    visit(page, f"/deployments/{DEPLOYMENT}", "rollback", ready="#rollback")
    page.fill("#rollback input[name=reason]", "canary errors")
    page.click("#rollback button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#history tbody tr td:nth-child(3)').textContent"
        " == 'rollback'"
    )
    with ui_server.http("reader") as http:
        assert http.get(f"/api/v1/models/{MODEL}/aliases/champion").json()["version"] == other
        moved = http.get(f"/api/v1/models/{MODEL}/events").json()[-1]
        assert (moved["action"], moved["user"], moved["reason"], moved["to_version"]) == (
            "set_alias", "maintainer", "better on last week's labels", other,
        )  # fmt: skip
        deployment = http.get(f"/api/v1/deployments/{DEPLOYMENT}").json()
        weights = [(r["role"], r["weight"]) for r in deployment["routes"]]
        assert weights == [("primary", 100.0), ("canary", 0.0)]  # the canary's traffic taken away
        event = http.get(f"/api/v1/deployments/{DEPLOYMENT}/history").json()[-1]
        assert (event["action"], event["user"], event["reason"]) == (
            "rollback", "maintainer", "canary errors",
        )  # fmt: skip
    page.close()


def test_a_reader_sees_no_buttons_and_the_server_refuses(
    signed_in: Any, visit: Any, ui_server: Any
) -> None:
    page = signed_in("reader")
    decision = ui_server.data["decision"]
    for path, name in (
        (f"/models/{MODEL}/versions/1", "reader-model-version"),
        (f"/deployments/{DEPLOYMENT}", "reader-deployment"),
        (f"/decisions/{decision}", "reader-decision"),
        (f"/review/{DEPLOYMENT}", "reader-review"),
    ):
        visit(page, path, name)
        assert page.locator("form.action").count() == 0, path
    page.close()
    with ui_server.http("reader") as http:
        item = http.get(f"/api/v1/review/{DEPLOYMENT}/items").json()[0]["prediction_id"]
        refused = [
            http.put(f"/api/v1/models/{MODEL}/aliases/champion", json={"version": 1}),
            http.post(f"/api/v1/deployments/{DEPLOYMENT}/rollback", json={"reason": "no"}),
            http.post(f"/api/v1/decisions/{decision}/approve", json={"reason": "no"}),
            http.post(f"/api/v1/review/{DEPLOYMENT}/items/{item}/label", json={"label": 1}),
            http.put(f"/api/v1/review/{DEPLOYMENT}", json={"strategy": "random"}),
        ]
        assert [r.status_code for r in refused] == [403] * 5
        assert http.get(f"/api/v1/decisions/{decision}").json()["state"] == "awaiting_approval"


def test_a_decision_is_approved_from_its_page(signed_in: Any, visit: Any, ui_server: Any) -> None:
    decision = ui_server.data["decision"]
    page = signed_in("maintainer")
    visit(page, f"/decisions/{decision}", "approve", ready="#approve")
    page.fill("#approve input[name=reason]", "looks right")
    page.click("#approve button[type=submit]")
    page.wait_for_function("() => !document.querySelector('#approve')")
    assert "approved" in page.inner_text("#state")
    with ui_server.http("reader") as http:
        assert http.get(f"/api/v1/decisions/{decision}").json()["state"] == "approved"
        events = http.get(f"/api/v1/decisions/{decision}/events").json()
    assert events[-1]["kind"] == "approved" and "maintainer" in json.dumps(events[-1])
    page.close()


def test_a_label_given_in_the_review_queue_is_feedback_with_who(
    signed_in: Any, visit: Any, ui_server: Any
) -> None:
    page = signed_in("writer")
    visit(page, f"/review/{DEPLOYMENT}", "review-label", ready=".review-item")
    first = page.locator(".review-item").first
    prediction = first.get_attribute("data-prediction")
    first.locator("button[name=label][value='1']").click()
    page.wait_for_function(
        "(id) => !document.querySelector(`.review-item[data-prediction='${id}']`)", arg=prediction
    )
    with ui_server.http("reader") as http:
        feedback = http.get("/api/v1/predictions/feedback", params={"deployment": DEPLOYMENT})
    given = {f["prediction_id"]: f for f in feedback.json()}
    assert (given[prediction]["label"], given[prediction]["user"]) == ("1", "writer")
    assert page.locator("#done td", has_text="writer").count() == 1
    page.close()


def test_pages_of_missing_things_say_what_is_missing(ui_server: Any) -> None:
    import httpx

    with httpx.Client(base_url=ui_server.url) as http:
        http.post("/signin", data={"user": "reader", "token": ui_server.tokens["reader"]})
        for path, message in (
            ("/deployments/nowhere", "Deployment &#39;nowhere&#39; not found"),
            (f"/models/{MODEL}/versions/99", "has no version 99"),
            ("/monitors/churn-watch/windows/5", "has no window ending at 5"),
            ("/predictions/nope", "No logged prediction has id &#39;nope&#39;"),
            ("/decisions/999", "999"),
            ("/data/nothing/versions/1", "nothing"),
        ):
            page = http.get(path)
            assert page.status_code == 404, path
            assert message in page.text and "Traceback" not in page.text, path
        bad = http.get("/decisions/first")
        assert bad.status_code == 422 and "Invalid address: path.decision_id" in bad.text
        unset = http.get("/review/nowhere")
        assert unset.status_code == 200 and "has no review queue yet" in unset.text
