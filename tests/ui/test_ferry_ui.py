"""`ferry ui`: the web UI over a local store, on loopback, with no sign-in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from team_world import FERRY, free_port

pytestmark = pytest.mark.e2e


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["FERRY_HOME"] = str(tmp_path / ".ferry")
    return env


def test_ferry_ui_serves_the_local_store_without_sign_in(tmp_path: Path) -> None:
    env = _env(tmp_path)
    made = "import ferryml as f\nwith f.start_run(run_name='first'): f.log_metric('m', 1.0)\n"
    subprocess.run([sys.executable, "-c", made], cwd=tmp_path, env=env, check=True)
    port = free_port()
    ui = subprocess.Popen(
        [FERRY, "ui", "--no-browser", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                home = httpx.get(f"{url}/experiments", timeout=5)
                break
            except httpx.TransportError:
                assert ui.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert home.status_code == 200 and "Default" in home.text
        assert httpx.get(url).headers["location"] == "/experiments"
    finally:
        ui.terminate()
        out = ui.communicate(timeout=30)[0].decode()
    assert f"ferry ui on http://127.0.0.1:{port}/" in out


def test_ferry_ui_refuses_a_team_servers_store(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "FERRY_TRACKING_URI": "http://127.0.0.1:9/"}
    done = subprocess.run(
        [FERRY, "ui", "--no-browser"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2  # bad usage
    assert "ferry ui shows a local store" in done.stderr + done.stdout
