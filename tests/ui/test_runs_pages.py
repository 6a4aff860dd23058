"""The experiments and runs pages in Chromium: they render, filter, refuse a bad filter in
the page, and show a reader no button that changes anything."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from ferryml.tracking.client import FerryClient

pytestmark = pytest.mark.e2e


def ui_data(client: FerryClient) -> dict[str, Any]:
    experiment = client.create_experiment("churn")
    runs = {}
    for i in range(6):
        run = client.create_run(experiment, run_name=f"run-{i}")
        rid = run.info.run_id
        client.log_batch(rid, params={"lr": 0.1 * (i + 1), "model": "rf" if i % 2 else "gbm"})
        for step in range(200):
            client.log_metric(rid, "loss", 1.0 / (step + 1 + i), step=step)
        client.log_metric(rid, "accuracy", 0.5 + 0.08 * i)
        client.set_terminated(rid)
        runs[f"run-{i}"] = rid
    parent = runs["run-5"]
    child = client.create_run(experiment, run_name="fold-1", parent_run_id=parent)
    client.log_metric(child.info.run_id, "accuracy", 0.6)
    client.set_terminated(child.info.run_id)
    runs["fold-1"] = child.info.run_id
    odd = client.create_experiment("odd values")
    run = client.create_run(odd, run_name="odd")
    client.log_metric(run.info.run_id, "score", math.nan)
    client.log_metric(run.info.run_id, "gain", -math.inf)
    client.set_terminated(run.info.run_id)
    return {"experiment": experiment, "runs": runs, "odd": odd}


def _rows(page: Any) -> list[str]:
    return page.locator("#runs tbody tr:not([hidden]) td:nth-child(2) a").all_inner_texts()


def test_the_pages_render_for_a_writer(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("writer")
    visit(page, "/experiments", "experiments", ready="text=churn")
    experiment = ui_server.data["experiment"]
    visit(page, f"/experiments/{experiment}", "runs", ready="#runs tbody tr[data-run]")
    assert len(_rows(page)) == 6  # the child folded under run-5
    page.click("#runs tr[data-run] button.fold")
    assert "fold-1" in _rows(page)
    assert page.locator("[data-change]").count() == 1  # Delete selected
    page.check("tr[data-run] input[aria-label='Select run run-1']")
    page.check("tr[data-run] input[aria-label='Select run run-2']")
    page.click("#compare")
    page.wait_for_selector("#diff")
    assert page.locator("#diff thead th a").all_inner_texts() == ["run-1", "run-2"]
    page.close()


def test_the_filter_filters_and_sorts(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("reader")
    experiment = ui_server.data["experiment"]
    visit(page, f"/experiments/{experiment}", "runs-reader", ready="#runs tbody tr[data-run]")
    page.fill("#filter", "metrics.accuracy > 0.7 and params.model = 'rf'")
    page.press("#filter", "Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('#runs tbody tr[data-run]').length == 2"
    )
    assert sorted(_rows(page)) == ["run-3", "run-5"]
    assert "filter=metrics.accuracy" in page.url  # the view is a URL
    page.locator("th button.sort", has_text="accuracy").click()
    page.wait_for_function("() => location.search.includes('accuracy')")
    page.wait_for_function(
        "() => document.querySelector('#runs tbody tr[data-run] a').textContent == 'run-5'"
    )
    page.close()


def test_nan_and_infinite_metrics_show_as_such(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("reader")
    odd = ui_server.data["odd"]
    visit(page, f"/experiments/{odd}", "runs-odd-values", ready="#runs tbody tr[data-run]")
    cells = page.locator("#runs tbody tr[data-run] td.num").all_inner_texts()
    assert "NaN" in cells and "-Infinity" in cells
    assert page.locator("#search-error").is_hidden()
    page.close()


def test_a_bad_filter_shows_its_message(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("reader")
    experiment = ui_server.data["experiment"]
    bad = "metrics.accuracy >> 1"
    visit(
        page,
        f"/experiments/{experiment}?filter={bad}",
        "runs-bad-filter",
        ready="#search-error:not([hidden])",
        allow=("status of 422",),
    )
    message = page.inner_text("#search-error")
    assert "Invalid filter" in message and "column" in message
    assert page.locator("#runs tbody tr[data-run]").count() == 0
    page.close()


def test_a_reader_sees_no_change_button_and_is_refused(
    signed_in: Any, visit: Any, ui_server: Any
) -> None:
    page = signed_in("reader")
    experiment = ui_server.data["experiment"]
    visit(page, f"/experiments/{experiment}", "runs-as-reader", ready="#runs tbody tr[data-run]")
    assert page.locator("[data-change]").count() == 0
    run_id = ui_server.data["runs"]["run-0"]
    status = page.evaluate(
        """async (id) => (await fetch(`/api/v1/runs/${id}`, {method: "PATCH",
            headers: {"Content-Type": "application/json", "X-Ferry-UI": "1"},
            body: JSON.stringify({lifecycle_stage: "deleted"})})).status""",
        run_id,
    )
    assert status == 403
    with ui_server.http("reader") as http:
        assert http.get(f"/api/v1/runs/{run_id}").json()["info"]["lifecycle_stage"] == "active"
    page.close()


def test_a_change_sent_with_the_cookie_alone_is_refused(ui_server: Any) -> None:
    """Another site's form can send the cookie but not the X-Ferry-UI header."""
    with httpx.Client(base_url=ui_server.url) as http:
        signed = http.post(
            "/signin", data={"user": "writer", "token": ui_server.tokens["writer"], "next": "/"}
        )
        assert signed.status_code == 303 and "ferry_session" in http.cookies
        run_id = ui_server.data["runs"]["run-1"]
        refused = http.patch(f"/api/v1/runs/{run_id}", json={"lifecycle_stage": "deleted"})
        assert refused.status_code == 403
        assert "x-ferry-ui header" in refused.json()["error"]["message"]
        assert http.get(f"/api/v1/runs/{run_id}").json()["info"]["lifecycle_stage"] == "active"
        http.post("/signout")
        assert http.get(f"/api/v1/runs/{run_id}").status_code == 401


def test_sign_in_with_a_wrong_token_says_so(ui_server: Any) -> None:
    with httpx.Client(base_url=ui_server.url) as http:
        page = http.post("/signin", data={"user": "writer", "token": ui_server.tokens["reader"]})
        assert page.status_code == 401
        assert "do not match an active user" in page.text
        assert http.get("/experiments").status_code == 303  # to the sign-in page
        assert http.get("/experiments/999").status_code == 303
