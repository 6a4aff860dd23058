"""A run's page in Chromium: its charts draw its values (and follow a running run), its
artifacts preview, and comparing runs overlays them."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.store.entities import Metric
from ferryml.tracking.client import FerryClient

pytestmark = pytest.mark.e2e

# A 2x2 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


def _loss(step: int, offset: int) -> float:
    return 1.0 / (step + 1 + offset)


def ui_data(client: FerryClient) -> dict[str, Any]:
    experiment = client.create_experiment("vision")
    runs = {}
    for i in range(3):
        rid = client.create_run(experiment, run_name=f"cnn-{i}").info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            rid,
            metrics=[Metric("loss", _loss(s, i), now + s, s) for s in range(500)],
            params={"lr": 0.01 * (i + 1), "layers": 3 + (i == 2)},
        )
        client.log_metric(rid, "accuracy", 0.7 + 0.1 * i)
        runs[f"cnn-{i}"] = rid
    first = runs["cnn-0"]
    client.log_dict(first, {"classes": ["cat", "dog"], "threshold": 0.5}, "eval/config.json")
    client.log_text(first, "epoch,loss\n1,0.9\n2,0.5\n", "eval/curve.csv")
    client.log_text(first, "<h1>Report</h1><p>all good</p>", "report.html")
    client.log_bytes(first, PNG, "plots/confusion.png")
    client.log_input(first, "images", 3, context="training")
    for rid in runs.values():
        client.set_terminated(rid)
    live = client.create_run(experiment, run_name="still-training").info.run_id
    client.log_metric(live, "loss", 1.0, step=0)
    client.flush()
    runs["still-training"] = live
    return {"experiment": experiment, "runs": runs}


def test_a_runs_chart_shows_its_values(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("reader")
    run_id = ui_server.data["runs"]["cnn-1"]
    visit(page, f"/runs/{run_id}", "run", ready="figure[data-key=loss][data-points]")
    chart = page.locator("figure[data-key=loss]")
    assert chart.get_attribute("data-total") == "500"
    assert float(chart.get_attribute("data-last")) == pytest.approx(_loss(499, 1))
    assert chart.locator("canvas").count() == 1
    assert "lr" in page.inner_text("#h-params + dl")
    page.check("#log-scale")  # redrawn on a log scale, same values
    assert float(chart.get_attribute("data-last")) == pytest.approx(_loss(499, 1))
    assert page.locator("[data-change]").count() == 0  # a reader
    page.close()


def test_artifacts_preview(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("writer")
    run_id = ui_server.data["runs"]["cnn-0"]
    visit(page, f"/runs/{run_id}", "run-artifacts", ready="#artifact-tree > ul")
    assert "images@3" in page.inner_text("#h-lineage ~ ul")
    preview = page.locator("#artifact-preview")
    page.click("summary:text('eval/')")
    page.click("button:text('config.json')")
    preview.locator("pre").wait_for()
    assert '"threshold": 0.5' in preview.inner_text()
    page.click("button:text('curve.csv')")
    preview.locator("table").wait_for()
    assert preview.locator("tbody tr").count() == 2
    page.click("summary:text('plots/')")
    page.click("button:text('confusion.png')")
    page.wait_for_function(
        "() => document.querySelector('#artifact-preview img')?.naturalWidth == 2"
    )
    page.click("button:text('report.html')")
    frame = page.frame_locator("#artifact-preview iframe")
    assert frame.locator("h1").inner_text() == "Report"
    page.screenshot(path=str(visit.screenshots / "run-artifact-html.png"))
    assert page.locator("#delete-run[data-change]").count() == 1  # a writer
    page.close()


def test_a_running_runs_chart_follows_it(signed_in: Any, visit: Any, ui_server: Any) -> None:
    page = signed_in("reader")
    run_id = ui_server.data["runs"]["still-training"]
    visit(page, f"/runs/{run_id}", "run-live", ready="figure[data-key=loss][data-points]")
    assert page.get_attribute("figure[data-key=loss]", "data-total") == "1"
    settings = Settings(
        home=ui_server.home, store_url=ui_server.store_url, artifacts_url=ui_server.artifacts_url
    )
    client = FerryClient(settings)
    try:
        for step in range(1, 5):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        client.flush()
        page.wait_for_function(
            "() => document.querySelector('figure[data-key=loss]').dataset.total == '5'",
            timeout=15_000,
        )
        client.set_terminated(run_id)
    finally:
        client.close()
    page.wait_for_function(
        "() => document.getElementById('run-status').textContent == 'FINISHED'", timeout=15_000
    )
    page.close()


def test_comparing_runs_overlays_and_marks_differences(
    signed_in: Any, visit: Any, ui_server: Any
) -> None:
    page = signed_in("reader")
    runs = ui_server.data["runs"]
    ids = "&".join(f"run={runs[n]}" for n in ("cnn-0", "cnn-1", "cnn-2"))
    visit(page, f"/compare?{ids}", "compare", ready="figure[data-key=loss][data-lines='3']")
    rows = page.locator("#diff tbody tr")
    differs = {
        rows.nth(i).get_attribute("data-key")
        for i in range(rows.count())
        if "differs" in (rows.nth(i).get_attribute("class") or "")
    }
    assert {"lr", "layers", "accuracy", "loss"} <= differs
    page.select_option("#parallel-metric", "accuracy")
    assert page.locator("#parallel svg path.line").count() == 3
    page.close()


def test_the_routes_the_pages_read_answer_bad_input_in_one_line(ui_server: Any) -> None:
    run_id = ui_server.data["runs"]["cnn-0"]
    with ui_server.http("reader") as http:
        series = http.get(f"/api/v1/runs/{run_id}/series", params={"key": "loss", "points": 50})
        assert series.json()["total"] == 500 and len(series.json()["value"]) == 50
        assert series.json()["value"][0] == pytest.approx(_loss(0, 0))
        assert (
            http.get(f"/api/v1/runs/{run_id}/series", params={"key": "nope"}).json()["total"] == 0
        )
        few = http.get(f"/api/v1/runs/{run_id}/series", params={"key": "loss", "points": 2})
        assert few.status_code == 422
        missing = http.get("/api/v1/runs/0123/series", params={"key": "loss"})
        assert missing.status_code == 404 and "not found" in missing.json()["error"]["message"]
        keys = http.get(f"/api/v1/experiments/{ui_server.data['experiment']}/keys").json()
        assert keys["params"] == ["layers", "lr"] and keys["metrics"] == ["accuracy", "loss"]
        html = http.get(f"/api/v1/runs/{run_id}/file", params={"path": "report.html"})
        assert html.headers["content-type"].startswith("text/html")
        assert html.headers["content-security-policy"].startswith("sandbox")
        absent = http.get(f"/api/v1/runs/{run_id}/file", params={"path": "nope.txt"})
        assert absent.status_code == 404 and "has no artifact 'nope.txt'" in absent.text
        table = http.get(f"/api/v1/runs/{run_id}/table", params={"path": "eval/curve.csv"})
        assert table.json() == {"columns": ["epoch", "loss"], "rows": [[1, 0.9], [2, 0.5]]}
        not_table = http.get(f"/api/v1/runs/{run_id}/table", params={"path": "report.html"})
        assert not_table.status_code == 422 and "is not a table" in not_table.text
        page = http.get("/compare", params={"run": run_id})
        assert page.status_code == 422 and "Compare needs 2 to 50 runs" in page.text
