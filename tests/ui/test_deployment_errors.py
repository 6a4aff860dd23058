"""A deployment's errors per route in Chromium: a real ``ferry serve`` process, given bad
requests and a model that fails, counts them; the team server's API answers them per
route and status class, and the deployment page shows them beside the rate and latency,
updating without a reload, to a reader who still sees no button, with no serious
accessibility violation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ferryml.tracking.client import FerryClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from failing_world import register_failing_deployment  # noqa: E402
from team_world import free_port  # noqa: E402

pytestmark = pytest.mark.e2e

NAME = "scoring"


def ui_data(client: FerryClient) -> dict[str, Any]:
    register_failing_deployment(client.settings, NAME)
    return {}


@pytest.fixture(scope="module")
def model_server(ui_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ferry serve scoring`` as a user runs it, over the team server's store; stopped
    with SIGTERM after."""
    port = free_port()
    home = tmp_path_factory.mktemp("serve")
    env = {
        **os.environ,
        "FERRY_HOME": str(home / "home"),
        "FERRY_STORE": ui_server.store_url,
        "FERRY_ARTIFACTS": ui_server.artifacts_url,
    }
    ferry = str(Path(sys.executable).parent / "ferry")
    process = subprocess.Popen(
        [ferry, "serve", NAME, "--port", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("ferry serve did not start")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def _infer(url: str, a: float) -> int:
    """One row to version 1 (the Open Inference Protocol's versioned route pins it)."""
    body = {
        "inputs": [
            {"name": "a", "shape": [1], "datatype": "FP64", "data": [a]},
            {"name": "b", "shape": [1], "datatype": "FP64", "data": [0.5]},
        ]
    }
    return httpx.post(f"{url}/v2/models/{NAME}/versions/1/infer", json=body).status_code


def test_errors_per_route_reach_the_api_and_the_page_live(
    signed_in: Any, visit: Any, ui_server: Any, model_server: str
) -> None:
    page = signed_in("reader")
    visit(page, f"/deployments/{NAME}", "deployment-no-errors", ready="#routes")
    errors = "#routes tr[data-route=v1] td[data-figure=errors]"
    assert page.inner_text(errors) == "0"
    assert page.locator("#routes tr[data-route='']").is_hidden()  # none refused yet

    sent = [_infer(model_server, 1.0) for _ in range(6)]
    sent += [_infer(model_server, -1.0) for _ in range(3)]  # the model refuses the input
    sent += [_infer(model_server, -100.0) for _ in range(4)]  # the model's store is down
    unreadable = httpx.post(f"{model_server}/v1/models/{NAME}/predict", content=b"{not json")
    assert sorted(sent) == [200] * 6 + [400] * 3 + [503] * 4 and unreadable.status_code == 422
    # the same page, not reloaded, shows them within a few polls
    page.wait_for_function(
        "(cell) => document.querySelector(cell).textContent == '7 (4xx 3, 5xx 4)'",
        arg=errors,
        timeout=20_000,
    )
    row = "#routes tr[data-route=v1]"
    assert page.inner_text(f"{row} td[data-figure=error_rate]") == "53.8%"  # 7 of 13
    assert page.inner_text(f"{row} td[data-figure=requests]") == "13"
    assert page.get_attribute(f"{row} td[data-figure=last_error]", "title") in (
        "The feature store is unreachable.",
        "The model could not predict this input: score cannot take a negative a",
    )
    refused = "#routes tr[data-route='']"
    page.wait_for_selector(refused, state="visible")
    assert page.inner_text(f"{refused} td[data-figure=errors]") == "1 (4xx 1)"
    page.close()

    with ui_server.http("reader") as http:
        routes = {r["route"]: r for r in http.get(f"/api/v1/deployments/{NAME}/traffic").json()}
    assert (routes["v1"]["errors_4xx"], routes["v1"]["errors_5xx"]) == (3, 4)
    assert (routes["v1"]["requests"], routes["v1"]["errors"]) == (13, 7)
    assert routes["v1"]["error_rate"] == pytest.approx(7 / 13)
    assert routes[""]["errors_4xx"] == 1 and "not valid JSON" in routes[""]["last_error"]
    assert "v2" not in routes  # the canary got nothing

    page = signed_in("reader")  # a fresh page with the errors: accessible, and no button
    visit(page, f"/deployments/{NAME}", "deployment-errors", ready="#routes svg.bars .failed")
    assert page.locator("form.action").count() == 0
    page.close()
