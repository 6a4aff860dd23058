"""SIGKILL in the middle of the operation, then a restart: a pipeline run is marked KILLED
by the next process and ``resume`` finishes it from the cache; a checkout run again
finishes what the killed one began, and so does a pull; predictions a server answered are
stored by the next process to open the prediction log, each once, and feedback joins them,
and so are the failed requests it counted;
a monitor's pass killed mid-way leaves each window stored once and counted once by its
alert rules. (The other components' SIGKILL cells are proven beside their code; the
README's table says where.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ferryml import predictions
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.pipelines.engine import run_target
from ferryml.serving.errorlog import RequestErrorLog
from ferryml.serving.predlog import PredictionLog
from ferryml.store.entities import RunStatus
from ferryml.store.factory import open_request_error_store
from ferryml.tracking.client import FerryClient

pytestmark = pytest.mark.e2e

PIPELINE = """
import os, time
from ferryml.pipelines import pipeline, step


def _called(calls: str, name: str) -> None:
    with open(calls, "a") as f:
        f.write(name + "\\n")


@step
def load(n: int, calls: str) -> list:
    _called(calls, "load")
    return list(range(n))


@step
def total(rows: list, calls: str, pause: str) -> int:
    _called(calls, "total")
    if not os.path.exists(pause):  # the first run waits here to be killed
        open(pause, "w").close()
        time.sleep(120)
    return sum(rows)


@pipeline
def counting(n: int = 5, calls: str = "", pause: str = ""):
    return total(load(n, calls), calls, pause)
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[str]:
    """A project folder holding a two-step pipeline; the module's name."""
    module = f"killed_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PIPELINE))
    sys.path.insert(0, str(tmp_path))
    yield module
    sys.path.remove(str(tmp_path))
    sys.modules.pop(module, None)


def test_a_pipeline_run_killed_mid_step_is_marked_killed_and_resumes_from_the_cache(
    tmp_path: Path, project: str
) -> None:
    calls, pause = tmp_path / "calls", tmp_path / "paused"
    code = (
        "from ferryml.pipelines.engine import run_target\n"
        f"run_target({project + ':counting'!r}, {{'calls': {str(calls)!r}, "
        f"'pause': {str(pause)!r}}})\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    child = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 60
        while not pause.exists():  # the second step has begun
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert calls.read_text() == "load\ntotal\n"

    settings = Settings.resolve(cwd=tmp_path, environ={})
    client = FerryClient(settings)  # replays the killed process's journal
    try:
        experiments = [e.experiment_id for e in client.list_experiments()]
        (killed,) = [
            r
            for r in client.search_runs(experiments, max_results=100).runs
            if r.data.tags.get("ferry.pipeline.ref", "").endswith("counting")
        ]
        assert killed.info.status is RunStatus.KILLED
    finally:
        client.close()
    resumed = run_target(f"{project}:counting", settings=settings, resume=killed.info.run_id)
    assert resumed.status == "FINISHED"
    assert resumed.output() == 10
    assert calls.read_text() == "load\ntotal\ntotal\n"  # load came from the cache


CHECKOUT = """
from ferryml.data.workspace import Workspace
print("restoring", flush=True)
Workspace().checkout("big@1", to="restored")
"""


def test_a_checkout_killed_half_way_is_finished_by_running_it_again(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(1000):
        (big / f"{i}.bin").write_bytes(os.urandom(1024))
    settings = Settings.resolve(cwd=tmp_path, environ={})
    workspace = Workspace(settings)
    try:
        workspace.add(str(big))
    finally:
        workspace.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHECKOUT], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    restored = tmp_path / "restored"
    try:
        assert child.stdout is not None and child.stdout.readline() == "restoring\n"
        deadline = time.monotonic() + 60
        while sum(1 for _ in restored.glob("*")) < 100:  # waiting for it to be under way
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        _kill(child)
    assert 0 < sum(1 for _ in restored.glob("*.bin")) < 1000
    # What a kill between a file's write and its rename leaves, whether or not this one did.
    (restored / ".7.bin.0123456789ab.tmp").write_bytes(b"half a file")

    workspace = Workspace(settings)
    try:
        workspace.checkout("big@1", to=str(restored))
    finally:
        workspace.close()
    assert sorted(p.name for p in restored.iterdir()) == sorted(p.name for p in big.iterdir())
    for path in big.iterdir():
        assert (restored / path.name).read_bytes() == path.read_bytes()


SERVING = """
import sys, time
import pandas as pd
from ferryml.config import Settings
from ferryml.serving.predlog import PredictionLog, new_prediction_id

log = PredictionLog(Settings.resolve(), flush_interval=3600).open()  # no flush before the kill
for i in range(int(sys.argv[1])):  # one request a prediction, as a server answers them
    ids = [new_prediction_id()]
    log.record("churn", "primary", "churn", 1, ids, pd.DataFrame({"x": [i]}), [i / 10], 1.0)
    print(ids[0], flush=True)  # the answer: the client has the id
print("answered", flush=True)
time.sleep(120)
"""


def test_predictions_answered_before_a_sigkill_are_stored_once_and_take_feedback(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    child = subprocess.Popen(
        [sys.executable, "-c", SERVING, "200"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        answered = [line.strip() for line in iter(child.stdout.readline, "answered\n")]
    finally:
        _kill(child)
    assert len(answered) == 200
    settings = Settings.resolve(cwd=tmp_path, environ={})
    assert list((settings.home / "predictions").glob("*.predwal"))  # nothing stored yet

    for _ in range(2):  # the second start finds nothing left to store
        PredictionLog(settings).open().close()
    frame = predictions.load("churn", with_feedback=False, settings=settings)
    assert sorted(frame["id"]) == sorted(answered)  # every answered prediction, once
    assert frame.set_index("id").loc[answered[7], "prediction"] == 0.7
    assert not list((settings.home / "predictions").glob("*.predwal"))

    report = predictions.record_feedback([(pid, 1) for pid in answered], settings=settings)
    assert (report.accepted, report.unknown_ids) == (200, [])


FAILING = """
import time
from ferryml.config import Settings
from ferryml.serving.errorlog import RequestErrorLog

errors = RequestErrorLog(Settings.resolve(), flush_interval=3600).open()  # no flush
for i in range(300):  # as a server answers failed requests
    errors.record("churn", "v1" if i % 3 else "", i % 3, 500 if i % 2 else 422, f"e{i}", 1000.0)
print("answered", flush=True)
time.sleep(120)
"""


def test_failed_requests_answered_before_a_sigkill_are_counted_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    child = subprocess.Popen(
        [sys.executable, "-c", FAILING], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "answered\n"
    finally:
        _kill(child)
    settings = Settings.resolve(cwd=tmp_path, environ={})
    (left,) = (settings.home / "request-errors").glob("*.predwal")
    kept = left.read_bytes()

    errors = RequestErrorLog(settings, flush_interval=3600).open()
    try:
        assert errors.recover() == 300
        left.write_bytes(kept)  # as if the next process died before removing the file
        assert errors.recover() == 300  # read again, stored once
        assert errors.recover() == 0
    finally:
        errors.close()
    store = open_request_error_store(settings)
    try:
        counts = store.count_request_errors("churn", since=0, until=10**7, width_ms=10**7)
    finally:
        store.close()
    found = {(c.route, c.status): c.count for c in counts}
    assert found == {("", 422): 50, ("", 500): 50, ("v1", 422): 100, ("v1", 500): 100}


def test_a_monitor_killed_mid_pass_leaves_each_window_stored_once_and_counted_once(
    tmp_path: Path,
) -> None:
    from ferryml.monitoring.alerts import AlertManager
    from ferryml.monitoring.monitors import MonitorSpec, add_monitor, report, run_monitor

    windows, rows, start = 120, 20, 1_717_200_000.0  # hourly windows
    settings = Settings.resolve(cwd=tmp_path, environ={})
    base = pd.DataFrame({"x": np.random.default_rng(0).normal(0.0, 1.0, rows)})
    with PredictionLog(settings) as log:
        for w in range(windows):  # odd windows drift, even ones repeat the reference
            batch = base + (3.0 if w % 2 else 0.0)
            ids = [f"w{w}-{i}" for i in range(rows)]
            log.record("d", "primary", "m", 1, ids, batch, [0] * rows, 1.0, time=start + w * 3600)
    reference = f"window:{_iso(start)}/{_iso(start + 3600)}"
    spec = MonitorSpec(
        name="watch", deployment="d", reference=reference, window="1h",
        rules=["drift_share > 0.3"], channels=["log"],
    )  # fmt: skip
    add_monitor(settings, spec)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    ferry = Path(sys.executable).parent / "ferry"
    child = subprocess.Popen(
        [str(ferry), "monitor", "run", "watch"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(report(settings, "watch")["windows"]) < 5:  # under way
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert 5 <= len(report(settings, "watch")["windows"]) < windows

    run_monitor(settings, "watch")
    stored = report(settings, "watch")["windows"]
    assert len(stored) == windows and len({w["start"] for w in stored}) == windows
    with AlertManager(settings, list(spec.rules)) as manager:
        alerts = manager.store.list_alerts(monitor="watch", limit=10 * windows)
    states = [a.state for a in sorted(alerts, key=lambda a: a.id)]
    assert states == ["fired", "resolved"] * (windows // 2 - 1) + ["fired"]  # each window once


def _iso(seconds: float) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M")


PULL = """
from ferryml.data import transfer
from ferryml.data.workspace import Workspace
print("pulling", flush=True)
transfer.pull(Workspace(), {remote!r})
print("pulled", flush=True)
"""


def test_a_pull_killed_half_way_is_finished_by_running_it_again(tmp_path: Path) -> None:
    from ferryml.data import transfer

    source, remote = tmp_path / "source", (tmp_path / "remote").as_uri()
    (source / "big").mkdir(parents=True)
    for i in range(3000):
        (source / "big" / f"{i}.bin").write_bytes(os.urandom(2048))
    workspace = Workspace(Settings.resolve(cwd=source, environ={}))
    try:
        workspace.add(str(source / "big"))
        transfer.push(workspace, remote)
    finally:
        workspace.close()
    clone = tmp_path / "clone"  # the project's metadata without its blobs, as on a new machine
    shutil.copytree(source, clone, ignore=shutil.ignore_patterns("big", "artifacts"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    child = subprocess.Popen(
        [sys.executable, "-c", PULL.format(remote=remote)],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    blobs = clone / ".ferry" / "artifacts" / "blobs"
    try:
        assert child.stdout is not None and child.stdout.readline() == "pulling\n"
        deadline = time.monotonic() + 60
        while sum(1 for _ in blobs.glob("*/*")) < 300:  # under way
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        _kill(child)
    assert 300 <= sum(1 for _ in blobs.glob("*/*")) < 3001

    workspace = Workspace(Settings.resolve(cwd=clone, environ={}))
    try:
        again = transfer.pull(workspace, remote)
        assert again.copied + again.present == 3001  # the files and the manifest
        assert 0 < again.copied < 3001  # only what the killed pull had not brought
        workspace.checkout("big@1")
    finally:
        workspace.close()
    for path in (source / "big").iterdir():
        assert (clone / "big" / path.name).read_bytes() == path.read_bytes()


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    if child.stdout is not None:
        child.stdout.close()
