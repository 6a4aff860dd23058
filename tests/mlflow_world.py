"""The real mlflow client, pinned with hashes (requirements/mlflow.txt), in a venv of its
own cached outside the clone and named by the lock's digest, as the Makefile caches the
lowest-versions venv (``make venv-mlflow`` builds it; the first test to need it does too).
Tests drive it as subprocess scripts (mlflow_scripts/) against a real ``ferry server``."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ferryml.config import Settings
from ferryml.registry.models import Registry
from ferryml.store.artifacts import ArtifactStore
from ferryml.store.sql import SqlStore

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "mlflow.txt"
SCRIPTS = Path(__file__).parent / "mlflow_scripts"


def venv_path() -> Path:
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    major, minor = sys.version_info[:2]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ferryml" / f"venv-mlflow-{major}-{minor}-{digest}"


def mlflow_python() -> Path:
    """The venv's python, built first if missing; the test skips when it cannot be."""
    venv = venv_path()
    marker = venv / ".installed"  # written last, so a half-made venv is made again
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build when several test processes start
        if not marker.exists():
            shutil.rmtree(venv, ignore_errors=True)
            python = venv / "bin" / "python"
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "--quiet", "pip==26.3"],
                [str(python), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK)],
            ]
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    pytest.skip(f"the mlflow client venv could not be built: {done.stderr[-300:]}")
            marker.touch()
    return venv / "bin" / "python"


def run_client(
    script: str, env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 300
) -> Any:
    """Run ``mlflow_scripts/<script>`` with the mlflow venv; its last stdout line, as JSON."""
    full = {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    # log_model infers requirements by loading the model in a subprocess (tens of seconds
    # on a loaded machine); a short timeout falls back to MLflow's default requirements.
    full.setdefault("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    full.pop("PYTHONPATH", None)  # the client must not see ferryml's sources
    done = subprocess.run(
        [str(mlflow_python()), str(SCRIPTS / script), *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


FERRY = str(Path(sys.executable).with_name("ferry"))


def ferry_cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``ferry`` command with ``home`` as FERRY_HOME and nothing else of the caller's
    but ``env``."""
    env = {"PATH": "/usr/bin:/bin", "FERRY_HOME": str(home), "HOME": str(home), **(env or {})}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    return subprocess.run([FERRY, *args], env=env, capture_output=True, text=True, check=False)


def check_imported(home: Path, source: str, wrote: dict[str, Any]) -> None:
    """``ferry import mlflow SOURCE`` into ``home`` brings what a populate script wrote
    (its printed ``wrote``), every part of it once: a second import adds nothing."""
    done = ferry_cli(home, "import", "mlflow", source, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counts = report["counts"]
    assert report["problems"] == [] and report["mismatches"] == []
    assert counts["runs"] == report["checked_runs"] == wrote["runs"]
    assert counts["metric values"] == wrote["values"]
    assert (counts["logged models"], counts["model versions"], counts["aliases"]) == (1, 1, 1)
    assert counts["dataset inputs"] == 1 and counts["artifacts"] == 2

    settings = Settings.resolve(home=home, environ={})
    store = SqlStore(settings.store_url).open()
    try:
        parent = store.get_run(wrote["parent"])
        assert parent.info.run_name == "parent" and parent.data.params == {"alpha": "0.5"}
        assert parent.data.metrics["loss"] == 1 / 10_000
        assert parent.data.metrics["odd"] != parent.data.metrics["odd"]  # NaN stays NaN
        history = store.get_metric_history(wrote["parent"], "loss")
        assert [m.step for m in history] == list(range(10_000))
        experiment = parent.info.experiment_id
        children = store.search_runs([experiment], "attributes.run_name LIKE 'child%'")[0]
        assert {c.info.parent_run_id for c in children} == {wrote["parent"]} and len(children) == 2
        assert store.get_run_info(wrote["deleted"]).lifecycle_stage == "deleted"
        bulk = store.get_experiment_by_name("bulk")
        assert bulk is not None and bulk.tags == {"team": "ml"}
        found = store.search_runs([bulk.experiment_id], "metrics.m0 >= 10 and params.kind = 'bulk'")
        names = sorted((r.info.run_name for r in found[0]), key=lambda n: int(n[1:]))
        assert names == [f"r{i}" for i in range(10, wrote["bulk"])]
        gone = store.get_experiment_by_name("gone")
        assert gone is not None and gone.lifecycle_stage == "deleted"
        files = {a.path: a.digest for a in store.list_artifacts(wrote["parent"])}
        artifacts = ArtifactStore(settings.artifacts_url).open()
        assert artifacts.get_bytes(files["notes/hello.txt"]) == b"hello"
        assert json.loads(artifacts.get_bytes(files["config.json"])) == {"a": 1}
        assert [(i.name, i.context) for i in parent.inputs] == [("train", "training")]
    finally:
        store.close()
    registry = Registry(settings)
    try:
        model = registry.load("models:/line@champion")
        assert model.predict([{"x": 4.0}]).tolist() == pytest.approx([4.0])
        assert registry.version("line@champion").tags["validated"] == "yes"
    finally:
        registry.close()

    again = ferry_cli(home, "import", "mlflow", source, "--json")
    counts = json.loads(again.stdout)["counts"]
    assert counts.get("runs", 0) == 0 and counts["runs already imported"] == wrote["runs"]
    assert counts.get("metric values", 0) == 0 and counts.get("model versions", 0) == 0


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real ``mlflow server`` (its SQLite store and proxied artifacts in ``folder``) on a
    free port of 127.0.0.1, stopped with its workers on leaving; yields its URL."""
    from serving.serving_net import free_port

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    mlflow = mlflow_python().with_name("mlflow")
    argv = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "mlartifacts"), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {"PATH": f"{mlflow.parent}:/usr/bin:/bin", "HOME": str(folder)}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        argv, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # minutes on a loaded machine
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start: {_tail(folder / 'server.log')}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]
