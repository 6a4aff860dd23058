"""The disk fills up while ferryml writes: a file-size limit (RLIMIT_FSIZE) in a child
process stands in for a full disk (writes past it fail with EFBIG as they would with
ENOSPC). Each write either completes or leaves nothing, the error says what filled up, and
the same call works once there is room again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ferryml import predictions
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.store.entities import RunStatus
from ferryml.tracking.client import FerryClient

pytestmark = pytest.mark.e2e

# The limit is set once the stores exist, and lifted (the space comes back) where the
# process goes on: the prediction log's blob is larger than its limit; the data version's
# file and the artifact are larger than the next, and the journal grows until it reaches it.
FULL = textwrap.dedent(
    """
    import json, os, resource, signal
    from pathlib import Path
    import numpy as np, pandas as pd
    import ferryml as ferry
    from ferryml.config import Settings
    from ferryml.data.workspace import Workspace
    from ferryml.serving.predlog import PredictionLog, new_prediction_id

    def report(**fields):
        print(json.dumps(fields), flush=True)

    def limit(size):
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills at the limit
    ferry.set_experiment("full")
    run = ferry.start_run()
    workspace = Workspace()
    predictions = PredictionLog(Settings.resolve(), flush_interval=3600).open()
    ids = [new_prediction_id() for _ in range(2000)]
    features = pd.DataFrame({"x": np.random.default_rng(0).random(2000)})
    predictions.record("churn", "primary", "churn", 1, ids, features, [0.5] * 2000, 1.0)
    limit(1000)
    try:
        predictions.flush()
    except ferry.FerryError as e:
        report(phase="predictions", error=type(e).__name__, message=str(e),
               pending=predictions.pending_rows)
    limit(resource.RLIM_INFINITY)
    report(phase="predictions, room again", flushed=predictions.flush())
    predictions.close()

    limit(1)  # the metadata store's own file cannot grow
    try:
        ferry.create_experiment("during")
    except ferry.FerryError as e:
        report(phase="store", error=type(e).__name__, message=str(e))
    limit(resource.RLIM_INFINITY)
    report(phase="store, room again", experiment=ferry.create_experiment("after"))

    home = Path(".ferry")
    size = max(p.stat().st_size for p in home.rglob("*") if p.is_file()) + 50_000
    Path("data").mkdir()
    Path("data/big.bin").write_bytes(os.urandom(size + 10_000))
    Path("model.bin").write_bytes(os.urandom(size + 10_000))
    limit(size)
    report(run_id=run.info.run_id, ids=ids)
    try:
        workspace.add("data")
    except ferry.FerryError as e:
        report(phase="data", error=type(e).__name__, message=str(e))
    try:
        ferry.log_artifact("model.bin")
    except ferry.FerryError as e:
        report(phase="artifact", error=type(e).__name__, message=str(e))
    accepted = 0
    try:
        for step in range(1_000_000):
            ferry.log_metric("m", float(step), step=step)
            accepted += 1
    except ferry.FerryError as e:
        report(phase="journal", error=type(e).__name__, message=str(e), accepted=accepted)
    os.kill(os.getpid(), signal.SIGKILL)  # no chance to flush: only the journal remains
    """
)


def _child(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python with ``args`` in a process of its own in ``cwd``, with no FERRY_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_full_disk_loses_no_accepted_value_and_leaves_no_partial_write(
    tmp_path: Path,
) -> None:
    child = _child(["-c", FULL], tmp_path)
    assert child.returncode == -signal.SIGKILL, child.stderr
    lines = [json.loads(line) for line in child.stdout.splitlines()]
    phases = {line.get("phase", "start"): line for line in lines}
    assert list(phases) == [
        "predictions",
        "predictions, room again",
        "store",
        "store, room again",
        "start",
        "data",
        "artifact",
        "journal",
    ], child.stderr
    run_id, ids = phases["start"]["run_id"], phases["start"]["ids"]
    for name in ("predictions", "store", "data", "artifact", "journal"):
        assert phases[name]["error"] == "StoreUnavailable", phases[name]
    assert "File too large" in phases["predictions"]["message"]
    assert phases["predictions"]["pending"] == 2000  # kept in memory, not dropped
    assert phases["predictions, room again"]["flushed"] == 2000
    assert phases["store"]["message"].startswith("Cannot write the store ")
    assert "Free space on its disk" in phases["store"]["message"]
    assert "File too large" in phases["data"]["message"]
    assert "free space" in phases["artifact"]["message"]
    journal = phases["journal"]
    assert "Cannot append to the journal" in journal["message"]
    assert "The value was not logged" in journal["message"]
    assert journal["accepted"] > 100

    settings = Settings.resolve(cwd=tmp_path, environ={})
    blobs = settings.home / "artifacts" / "blobs"
    assert [p.name for p in blobs.rglob("*.tmp")] == []  # no half-written blob is left
    client = FerryClient(settings)  # replays the dead process's journal
    try:
        history = client.get_metric_history(run_id, "m")
        assert [m.value for m in history] == [float(s) for s in range(journal["accepted"])]
        run = client.get_run(run_id)
        assert run.info.status is RunStatus.KILLED
        assert "model.bin" not in {a.path for a in client.list_artifacts(run_id)}
        names = {e.name for e in client.list_experiments()}
        assert "after" in names and "during" not in names
        again = client.create_run(run.info.experiment_id).info.run_id
        client.log_artifact(again, tmp_path / "model.bin")  # room again: it works
        client.log_metric(again, "m", 1.0)
        assert "model.bin" in {a.path for a in client.list_artifacts(again)}
    finally:
        client.close()
    logged = predictions.load("churn", settings=settings, with_feedback=False)
    assert sorted(logged["id"]) == sorted(ids)  # each once
    workspace = Workspace(settings)
    try:
        assert workspace.list_datasets() == []
        assert workspace.add(str(tmp_path / "data")).version == 1  # room again: it works
    finally:
        workspace.close()


MONITOR = textwrap.dedent(
    """
    import json, resource, signal
    import numpy as np, pandas as pd
    import ferryml as ferry
    from ferryml.config import Settings
    from ferryml.monitoring.monitors import MonitorSpec, add_monitor, run_monitor
    from ferryml.serving.predlog import PredictionLog

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    settings = Settings.resolve()
    start = 1_717_200_000.0
    with PredictionLog(settings) as log:
        for hour in range(4):
            x = np.random.default_rng(hour).normal(hour, 1.0, 50)
            ids = [f"h{hour}-{i}" for i in range(50)]
            log.record("d", "primary", "m", 1, ids, pd.DataFrame({"x": x}), [0] * 50, 1.0,
                       time=start + hour * 3600)
    add_monitor(settings, MonitorSpec("watch", "d", "window:2024-06-01T00:00/2024-06-01T01:00",
                                      "1h", rules=["drift_share > 0.3"], channels=["log"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
    try:
        run_monitor(settings, "watch")
    except ferry.FerryError as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}), flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print(json.dumps({"checked": len(run_monitor(settings, "watch")),
                      "again": len(run_monitor(settings, "watch"))}), flush=True)
    """
)


def test_a_monitor_pass_on_a_full_disk_is_refused_and_checks_each_window_once_with_room(
    tmp_path: Path,
) -> None:
    child = _child(["-c", MONITOR], tmp_path)
    assert child.returncode == 0, child.stderr
    refused, after = (json.loads(line) for line in child.stdout.splitlines())
    assert refused["error"] == "StoreUnavailable", refused
    assert refused["message"].startswith("Cannot write the store "), refused
    assert after == {"checked": 4, "again": 0}
    settings = Settings.resolve(cwd=tmp_path, environ={})
    from ferryml.monitoring.monitors import report

    windows = report(settings, "watch")["windows"]
    assert [w["start"][11:16] for w in windows] == ["00:00", "01:00", "02:00", "03:00"]


# Below and above the 4 MiB batch the server hashes on one thread while another writes.
@pytest.mark.parametrize("size", [3 << 20, 9 << 20])
def test_the_team_server_on_a_full_disk_refuses_an_upload_whole_and_takes_it_with_room(
    tmp_path: Path, make_store: Callable[..., Any], request: pytest.FixtureRequest, size: int
) -> None:
    import resource

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from team_world import TeamServer, add_users, free_port

    from ferryml.errors import StoreUnavailable
    from ferryml.store.http import ServerClient
    from ferryml.store.http_artifacts import HttpArtifactStore

    blobs = tmp_path / "server-blobs"
    with make_store("sqlite", tmp_path, request) as store_url:
        server = TeamServer(
            store_url,
            blobs.as_uri(),
            tmp_path / "server-home",
            free_port(),
            preexec=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN),  # fail, not die
        )
        server.tokens = add_users(store_url)
        server.start()
        store = HttpArtifactStore(ServerClient(server.url, server.tokens["writer"]))
        try:
            assert server.process is not None
            database = Path(store_url.removeprefix("sqlite:///"))
            room = max(database.stat().st_size, 1 << 20) + (256 << 10)
            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (room, -1))
            data = os.urandom(size)
            with pytest.raises(
                StoreUnavailable, match="The server's disk is full .*File too large"
            ):
                store.put_bytes(data)
            held = [p.parent.name for p in blobs.rglob("*") if p.is_file()]
            assert held == ["uploads"]  # what arrived waits to be resumed; no blob is stored
            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (-1, -1))
            blob = store.put_bytes(data)
            assert store.get_bytes(blob.digest) == data
        finally:
            store.close()
            server.stop()


PIPELINE = textwrap.dedent(
    """
    import json, os, resource, signal
    from pathlib import Path
    from ferryml.pipelines import pipeline, step
    from ferryml.pipelines.engine import run_pipeline

    CALLS = []

    @step
    def load(n: int) -> list:
        CALLS.append("load")
        return list(range(n))

    @step
    def big(rows: list) -> bytes:
        CALLS.append("big")
        biggest = max(p.stat().st_size for p in Path(".ferry").rglob("*") if p.is_file())
        if CALLS.count("big") == 1:  # the first run's output meets a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 50_000, resource.RLIM_INFINITY))
        return os.urandom(biggest + 100_000) + bytes(len(rows))

    @pipeline
    def making(n: int = 5):
        return big(load(n))

    if __name__ == "__main__":  # a module of its own, so its steps can be found again
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        first = run_pipeline(making)
        print(json.dumps({"status": first.status, "error": first.steps["big"].error}), flush=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        again = run_pipeline(making, resume=first.run_id)
        print(json.dumps({"status": again.status, "size": len(again.output()), "calls": CALLS}))
    """
)


def test_a_pipeline_step_whose_output_meets_a_full_disk_fails_and_resumes_with_room(
    tmp_path: Path,
) -> None:
    (tmp_path / "making.py").write_text(PIPELINE)  # a file: steps are found by their source
    child = _child(["making.py"], tmp_path)
    assert child.returncode == 0, child.stderr
    first, again = (json.loads(line) for line in child.stdout.splitlines())
    assert first["status"] == "FAILED"
    assert "File too large" in first["error"] and "free space" in first["error"]
    assert again["status"] == "FINISHED" and again["calls"] == ["load", "big", "big"]
    blobs = tmp_path / ".ferry" / "artifacts" / "blobs"
    assert [p.name for p in blobs.rglob("*.tmp")] == []  # the refused output left nothing
