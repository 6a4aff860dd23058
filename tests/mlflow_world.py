"""The real mlflow client, pinned with hashes (requirements/mlflow.txt), in a venv of its
own cached outside the clone and named by the lock's digest, as the Makefile caches the
lowest-versions venv (``make venv-mlflow`` builds it; the first test to need it does too).
Tests drive it as subprocess scripts (mlflow_scripts/) against a real ``ferry server``."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
