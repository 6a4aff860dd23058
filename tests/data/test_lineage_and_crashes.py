"""Lineage through the data API, and an ``add`` killed half way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import ferryml as ferry
import ferryml.data
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.store.artifacts import digest_file


def test_add_in_a_run_records_the_producer_and_load_records_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ferry.configure()
    frame = pd.DataFrame({"x": [1, 2, 3]})
    with ferry.start_run() as producer:
        version = ferryml.data.add(frame, name="features")
    with ferry.start_run() as consumer:
        loaded = ferryml.data.load("features@1")
    pd.testing.assert_frame_equal(loaded, frame)
    assert version.run_id == producer.run_id
    inputs = ferry.get_run(consumer.run_id).inputs
    assert [(i.name, i.version, i.digest) for i in inputs] == [
        ("features", "1", version.manifest_digest)
    ]
    ferry.configure()


def test_adding_a_frame_needs_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ferry.InvalidArgument, match="Name the table"):
        ferryml.data.add(pd.DataFrame({"x": [1]}))


ADD = """
import sys
from ferryml.data.workspace import Workspace
print("adding", flush=True)
Workspace().add("big")
"""


@pytest.mark.e2e
def test_a_killed_add_leaves_no_version_and_no_corrupt_blob(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(20_000):  # enough that the kill comes early, with a process per core
        (big / f"{i}.bin").write_bytes(os.urandom(2048))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    child = subprocess.Popen(
        [sys.executable, "-c", ADD], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "adding\n"
    blobs = tmp_path / ".ferry" / "artifacts" / "blobs"
    deadline = time.monotonic() + 60
    while sum(1 for _ in blobs.rglob("*")) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for the add to be half done, not ordering threads
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    ws = Workspace(Settings.resolve(cwd=tmp_path, environ={}))
    assert ws.list_datasets() == []
    assert not (tmp_path / "big.ferry").exists()
    for blob in blobs.rglob("*"):
        if blob.is_file() and not blob.name.startswith("."):
            assert digest_file(blob).digest == blob.parent.name + blob.name
    version = ws.add("big")
    assert (version.version, version.files) == (1, 20_000)
    assert (tmp_path / "big.ferry").exists()
    ws.close()
