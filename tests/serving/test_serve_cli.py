"""``ferry serve`` as a user runs it: a real process, stopped with SIGTERM, which flushes
the prediction log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port
from ferryml.predictions import load
from ferryml.serving.deployments import Deployments

pytestmark = pytest.mark.e2e


def _serve(registered: Any, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    s = registered.settings
    env = {
        **os.environ,
        "FERRY_HOME": str(s.home),
        "FERRY_STORE": s.store_url,
        "FERRY_ARTIFACTS": s.artifacts_url,
    }
    ferry = str(Path(sys.executable).parent / "ferry")
    process = subprocess.Popen(
        [ferry, "serve", *args, "--port", str(port)],
        env=env,
        cwd=s.home.parent,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"ferry serve did not start: {process.stderr.read()!r}")


def test_sigterm_flushes_every_logged_prediction(registered: Any) -> None:
    process, url = _serve(registered, "cancer@champion", "--workers", "2")
    body = {"records": registered.X.head(5).to_dict("records")}
    ids = [
        i
        for _ in range(6)
        for i in httpx.post(f"{url}/v1/models/cancer/predict", json=body).json()["ids"]
    ]
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    process.stderr.close()
    logged = load("cancer", settings=registered.settings, with_feedback=False)
    assert set(ids) <= set(logged["id"])


def test_a_deployment_is_served_by_its_name(registered: Any) -> None:
    manager = Deployments(registered.settings)
    manager.create("cancer-api", "cancer", 1)
    manager.close()
    process, url = _serve(registered, "cancer-api", "--no-log")
    try:
        answer = httpx.post(
            f"{url}/v1/models/cancer-api/predict",
            json={"records": registered.X.head(1).to_dict("records")},
        ).json()
        assert answer["route"] == "v1"
    finally:
        process.terminate()
        process.wait(timeout=60)
        process.stderr.close()


def test_serving_nothing_is_a_one_line_error(registered: Any) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ferry"), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # bad usage
    assert done.stderr == (
        "error: Name what to serve: NAME@ALIAS, --package DIR or --deployment NAME.\n"
    )
