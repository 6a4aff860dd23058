"""``ferry serve`` under load, as a user runs it (a real process): overload answered with
503 and Retry-After at once, and a rolling restart of two workers (SIGHUP) under load
that fails no request and loses no logged prediction."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_serve_cli import _serve

from ferryml.predictions import load

pytestmark = pytest.mark.e2e


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(x) for x in (task / "children").read_text().split())
    return found


def test_overload_is_answered_503_with_retry_after_and_accepted_requests_stay_fast(
    registered: Any,
) -> None:
    process, url, _ = _serve(registered, "cancer@champion", "--max-queue", "4")
    body = {"records": registered.X.head(1).to_dict("records")}
    clients, waves = 40, 5
    barrier = threading.Barrier(clients)

    def client(_: int) -> list[tuple[int, float, str | None, bytes]]:
        answers = []
        with httpx.Client(timeout=60) as http:
            for _ in range(waves):
                barrier.wait(timeout=60)  # each wave: every client at once, past the limit
                t = time.perf_counter()
                r = http.post(f"{url}/v1/models/cancer/predict", json=body)
                answers.append(
                    (
                        r.status_code,
                        time.perf_counter() - t,
                        r.headers.get("retry-after"),
                        r.content,
                    )
                )
        return answers

    try:
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            answers = [a for each in pool.map(client, range(clients)) for a in each]
        v2 = httpx.post(
            f"{url}/v2/models/cancer/infer",
            json={
                "inputs": [
                    {"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]}
                    for c in registered.X.columns
                ]
            },
        )
        assert v2.status_code == 200  # an idle server accepts again
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        process.stderr.close()
    statuses = [status for status, *_ in answers]
    assert set(statuses) == {200, 503}, statuses
    refused = [a for a in answers if a[0] == 503]
    assert all(retry == "1" for _, _, retry, _ in refused)
    assert b'"type":"Overloaded"' in refused[0][3]
    assert b"overloaded (" in refused[0][3] and b"--max-queue 4" in refused[0][3]
    # What was accepted had at most 4 requests ahead of it: answered well within a bound
    # (generous: the machine is shared), never left to time out.
    assert max(seconds for status, seconds, *_ in answers if status == 200) < 10
    assert statuses.count(200) >= waves  # every wave got some answers
    shed = [
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "ferry_errors_total" and sample.labels["status"] == "503"
    ]
    assert shed == [len(refused)]  # counted, under the route's template


def test_max_queue_must_be_positive(cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("serve", "m@champion", "--max-queue", "0")
    assert (code, err) == (2, "error: --max-queue 0: give at least 1 (or leave it out).\n")
    code, _, err = cli("serve", "m@champion", "--max-queue-wait-ms", "-5")
    assert (code, err) == (
        2,
        "error: --max-queue-wait-ms -5: give a number of milliseconds above 0.\n",
    )


def test_sighup_stops_one_worker_gracefully(registered: Any) -> None:
    process, url, _ = _serve(registered, "cancer@champion")
    body = {"records": registered.X.head(3).to_dict("records")}
    ids = httpx.post(f"{url}/v1/models/cancer/predict", json=body).json()["ids"]
    process.send_signal(signal.SIGHUP)
    # Stopped as by SIGTERM (uvicorn re-raises it once stopped), not killed by SIGHUP.
    assert process.wait(timeout=60) == -signal.SIGTERM
    process.stderr.close()
    logged = load("cancer", settings=registered.settings, with_feedback=False)
    assert set(ids) <= set(logged["id"])


@pytest.mark.slow
def test_a_rolling_restart_of_two_workers_under_load_fails_no_request(registered: Any) -> None:
    process, url, _ = _serve(registered, "cancer@champion", "--workers", "2")
    body = {"records": registered.X.head(2).to_dict("records")}
    stop = threading.Event()
    failures: list[str] = []
    ids: list[str] = []

    def client(_: int) -> int:
        sent = 0
        with httpx.Client(timeout=30) as http:
            while not stop.is_set() and sent < 5000:  # bounded in count and in time
                sent += 1
                try:
                    r = http.post(f"{url}/v1/models/cancer/predict", json=body)
                except httpx.HTTPError as e:
                    failures.append(repr(e))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    ids.extend(r.json()["ids"])
        return sent

    before = _children(process.pid)
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            sent = [pool.submit(client, i) for i in range(6)]
            time.sleep(1.0)
            process.send_signal(signal.SIGHUP)  # replace both workers, one at a time
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                now = _children(process.pid)
                if len(before - now) >= 2 and len(now) >= len(before):
                    break
                time.sleep(0.2)
            replaced = before - _children(process.pid)
            time.sleep(1.0)  # the new workers serve for a while too
            stop.set()
            total = sum(f.result() for f in sent)
        assert len(replaced) >= 2, "both workers were replaced"
    finally:
        stop.set()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        process.stderr.close()
    assert failures == []
    assert len(ids) == 2 * total
    logged = load("cancer", settings=registered.settings, with_feedback=False)
    assert set(ids) <= set(logged["id"])
