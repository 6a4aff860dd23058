"""``ferry serve`` as a user runs it: a real process, stopped with SIGTERM, which flushes
the prediction log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_net import free_port

from ferryml.predictions import load
from ferryml.serving.deployments import Deployments

pytestmark = pytest.mark.e2e


def _serve(registered: Any, *args: str) -> tuple[subprocess.Popen[bytes], str, str]:
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
        stdout=subprocess.PIPE,
        start_new_session=True,  # so a failed start can stop its workers too
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                assert process.stdout is not None
                line = process.stdout.readline().decode().strip().replace(str(port), "PORT")
                process.stdout.close()
                return process, url, line
        except httpx.TransportError:
            time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    _, err = process.communicate()
    raise AssertionError(f"ferry serve did not start: {err!r}")


def test_sigterm_flushes_every_logged_prediction(registered: Any) -> None:
    process, url, line = _serve(registered, "cancer@champion", "--workers", "2")
    assert line == (
        "ferry serve: cancer: cancer version 1 at http://127.0.0.1:PORT "
        "(/v1, /v2, /invocations, /metrics, /docs)"
    )
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
    process, url, line = _serve(registered, "cancer-api", "--no-log")
    assert line.startswith("ferry serve: cancer-api: cancer version 1 at http://127.0.0.1:PORT")
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
        "error: Name what to serve: NAME@ALIAS, --package DIR, --deployment NAME or "
        "--all-deployments.\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--port", "99999"],
            "error: --port 99999 is not a TCP port: give a number from 1 to 65535.\n",
        ),
        (
            ["--grpc-port", "IN_USE"],
            "error: Port IN_USE on 127.0.0.1 is in use by another process; stop it or choose "
            "another --grpc-port.\n",
        ),
        (
            ["--host", "203.0.113.9"],
            "error: 203.0.113.9 is not an address of this machine; give one of its own, "
            "127.0.0.1 or 0.0.0.0.\n",
        ),
        (
            ["--port", "IN_USE"],
            "error: Port IN_USE on 127.0.0.1 is in use by another process; stop it or choose "
            "another --port.\n",
        ),
    ],
)
def test_a_port_or_address_it_cannot_listen_on_is_a_one_line_error(
    args: list[str], message: str, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = cli("serve", "m@champion", *[port if a == "IN_USE" else a for a in args])
    assert (code, err) == (2, message.replace("IN_USE", port))
    assert not (tmp_path / ".ferry").exists()  # refused before opening anything


def _batch_rows(url: str) -> tuple[float, float]:
    """The count and sum of ``ferry_batch_rows`` on ``/metrics`` (0, 0 when absent)."""
    found = {"count": 0.0, "sum": 0.0}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        for kind in found:
            if line.startswith(f"ferry_batch_rows_{kind}{{"):
                found[kind] += float(line.rsplit(" ", 1)[1])
    return found["count"], found["sum"]


@pytest.mark.parametrize(("args", "batched"), [((), True), (("--no-batch",), False)])
def test_requests_are_gathered_into_batches_unless_no_batch(
    registered: Any, args: tuple[str, ...], batched: bool
) -> None:
    process, url, _ = _serve(registered, "cancer@champion", "--no-log", *args)
    try:
        rows = registered.X.head(3).to_dict("records")
        expected = registered.good.predict(registered.X.head(3)).tolist()
        with httpx.Client() as client:
            for n in (1, 2, 3):  # every request gets its own rows' answers back
                answer = client.post(
                    f"{url}/v1/models/cancer/predict", json={"records": rows[:n]}
                ).json()
                assert answer["predictions"] == expected[:n]
        # One after another, each request is a batch of its own (of 1, 2 and 3 rows).
        assert _batch_rows(url) == ((3.0, 6.0) if batched else (0.0, 0.0))
    finally:
        process.terminate()
        process.wait(timeout=60)
        process.stderr.close()
