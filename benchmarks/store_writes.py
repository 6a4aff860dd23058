"""Store writes a team's topology makes, per second: the prediction log's index rows (one
commit per flush of one deployment in one server process) and feedback labels (upserted
in batches), straight into PostgreSQL and through ``ferry server`` over it, from 1 and 4
writer processes at once. docs/scaling.md builds on these figures.

    python benchmarks/store_writes.py [--quick] [--json] [--postgres ADMIN_URL]

Everything lives in a database of its own in that server (default: 127.0.0.1:5432, the
``postgres`` database as the admin connection), dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ferryml.config import Settings
from ferryml.store.entities import Role
from ferryml.store.factory import open_prediction_store, open_user_store
from ferryml.store.loop import Feedback, PredictionPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from topology import private_database  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _settings(store: str, home: str, token: str | None = None) -> Settings:
    return Settings(home=Path(home), store_url=store, artifacts_url=store, token=token)


def _index_rows(store: Any, count: int, writer: int) -> None:
    """``count`` commits of one index row each, as one server process's flushes."""
    now = int(time.time() * 1000)
    for i in range(count):
        pid = f"{writer:04d}{i:012d}"
        partition = PredictionPartition(uuid.uuid4().hex * 2, f"m-{i % 50}", 100, now, now,
                                        pid, pid, now)  # fmt: skip
        store.create_partitions([partition])


def _labels(store: Any, count: int, writer: int) -> None:
    """``count`` labels upserted in batches of 1,000."""
    now = int(time.time() * 1000)
    for at in range(0, count, 1000):
        rows = [
            Feedback(f"{writer:04d}{i:012d}", f"m-{i % 50}", now, "1", now)
            for i in range(at, min(at + 1000, count))
        ]
        store.upsert_feedback(rows, user="bench")


WORK = {"index": _index_rows, "labels": _labels}


def _writer(kind: str, target: tuple[str, str, str | None], count: int, writer: int,
            ready: Any, times: Any) -> None:  # fmt: skip
    """One writer process: opens the store, writes once, waits for the others, then times
    ``count`` writes."""
    store = open_prediction_store(_settings(*target))
    try:
        WORK[kind](store, 1, writer + 10_000)  # connections and imports, before the clock
        ready.wait()
        started = time.time()
        WORK[kind](store, count, writer)
        times.put((started, time.time()))
    finally:
        store.close()


def _rate(kind: str, target: tuple[str, str, str | None], count: int, writers: int) -> float:
    """Writes per second of ``writers`` processes writing ``count`` each at once."""
    context = multiprocessing.get_context("spawn")
    ready, times = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=_writer, args=(kind, target, count, w + 100 * writers, ready, times))
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    spans = [times.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return writers * count / (max(e for _, e in spans) - min(s for s, _ in spans))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def team_server(store: str, folder: str) -> Iterator[tuple[str, str]]:
    """``ferry server`` (one worker) over ``store``: its URL and a maintainer's token."""
    users = open_user_store(_settings(store, folder))
    try:
        users.create_user("bench", Role.MAINTAINER)
        token = users.create_token("bench", "bench")[1]
    finally:
        users.close()
    port = _free_port()
    script = Path(sys.executable).with_name("ferry")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ferryml"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(FERRY_HOME=folder, FERRY_STORE=store, FERRY_ARTIFACTS=Path(folder).as_uri())
    process = subprocess.Popen(
        [*command, "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, token
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--postgres", default=PG_DEFAULT, help="PostgreSQL admin URL")
    options = parser.parse_args()
    commits, labels = (50, 2000) if options.quick else (500, 20_000)
    figures: dict[str, float] = {"load_average_start": os.getloadavg()[0]}
    with private_database(options.postgres) as store, tempfile.TemporaryDirectory() as folder:
        # Opening it migrates the empty database before the writers race to.
        open_prediction_store(_settings(store, folder)).close()
        for writers in (1, 4):
            for kind, count in (("index", commits), ("labels", labels)):
                figures[f"pg_{kind}_per_s_{writers}w"] = _rate(
                    kind, (store, folder, None), count, writers
                )
        with team_server(store, folder) as (url, token):
            for writers in (1, 4):
                for kind, count in (("index", commits), ("labels", labels)):
                    figures[f"server_{kind}_per_s_{writers}w"] = _rate(
                        kind, (url, folder, token), count, writers
                    )
    figures["load_average_end"] = os.getloadavg()[0]
    if options.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        print(f"{key:<40} {value:>12,.1f}")


if __name__ == "__main__":
    main()
