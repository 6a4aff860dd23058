"""push and pull against an S3 emulator on 127.0.0.1, configured as users configure S3."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.data.transfer import pull, push
from ferryml.data.workspace import Workspace
from ferryml.errors import IntegrityError, InvalidArgument, NotFound, StoreUnavailable


@pytest.fixture
def ws(tmp_path: Path, s3_env: str) -> Workspace:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    for i in range(40):
        (root / "data" / f"{i}.txt").write_text(f"row {i}\n" * (i + 1))
    workspace = Workspace(Settings.resolve(cwd=root, environ={}))
    yield workspace
    workspace.close()


def _remote(s3_bucket: str, tmp_path: Path) -> str:
    return f"s3://{s3_bucket}/{tmp_path.name}"


def test_push_then_pull_restores_data_into_an_empty_store(
    ws: Workspace, s3_bucket: str, tmp_path: Path
) -> None:
    remote = _remote(s3_bucket, tmp_path)
    version = ws.add("data")
    report = push(ws, remote)
    assert (report.copied, report.present) == (41, 0)  # 40 files and the manifest
    assert push(ws, remote).copied == 0  # only what is missing moves

    shutil.rmtree(ws.settings.home / "artifacts")
    shutil.rmtree(ws.settings.home / "cache")
    shutil.rmtree(ws.root / "data")
    fresh = Workspace(ws.settings)
    with pytest.raises(NotFound, match="not in the local store.*ferry data pull"):
        fresh.checkout()
    pulled = pull(fresh, remote)
    assert pulled.copied == 41
    fresh.checkout()
    assert (ws.root / "data" / "39.txt").read_text() == "row 39\n" * 40
    assert fresh.version("data").manifest_digest == version.manifest_digest
    fresh.close()


def test_an_interrupted_push_resumes_with_only_the_missing_blobs(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    remote = _remote(s3_bucket, tmp_path)
    ws.add("data")
    push(ws, remote)
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{tmp_path.name}/blobs/")
    lost = [o["Key"] for o in listed["Contents"]][:7]  # as if the push stopped before them
    for key in lost:
        s3_client.delete_object(Bucket=s3_bucket, Key=key)
    report = push(ws, remote)
    assert (report.copied, report.present) == (7, 34)


def test_pull_of_a_table_brings_its_profile(ws: Workspace, s3_bucket: str, tmp_path: Path) -> None:
    import pandas as pd

    remote = _remote(s3_bucket, tmp_path)
    ws.add_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), "t")
    push(ws, remote, ["t@1"])
    shutil.rmtree(ws.settings.home / "artifacts")
    fresh = Workspace(ws.settings)
    pull(fresh, remote, ["t"])
    assert fresh.profile("t").rows == 3
    assert list(fresh.load("t")["x"]) == [1.0, 2.0, 3.0]
    fresh.close()


def test_no_remote_and_an_unreachable_remote_are_clear_errors(ws: Workspace) -> None:
    ws.add("data")
    with pytest.raises(InvalidArgument, match="No remote given: pass --remote"):
        push(ws)
    with pytest.raises(StoreUnavailable, match="is unreachable.*bucket 'no-such-bucket'"):
        push(ws, "s3://no-such-bucket/x")


def test_a_corrupt_local_blob_is_never_pushed_under_its_name(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    remote = _remote(s3_bucket, tmp_path)
    version = ws.add("data")
    entry = ws.manifest(version).by_path()["7.txt"]
    blob = ws.artifacts.local_path(entry.digest)
    assert blob is not None
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot")
    with pytest.raises(
        IntegrityError, match=f"^Blob {entry.digest} in artifact store .* is corrupt"
    ):
        push(ws, remote)
    key = f"{tmp_path.name}/blobs/{entry.digest[:2]}/{entry.digest[2:]}"
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=key)
    assert listed.get("KeyCount", 0) == 0


def test_a_blob_missing_on_the_remote_is_named_by_pull(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    remote = _remote(s3_bucket, tmp_path)
    version = ws.add("data")
    push(ws, remote)
    digest = ws.manifest(version).by_path()["3.txt"].digest
    s3_client.delete_object(
        Bucket=s3_bucket, Key=f"{tmp_path.name}/blobs/{digest[:2]}/{digest[2:]}"
    )
    shutil.rmtree(ws.settings.home / "artifacts")
    fresh = Workspace(ws.settings)
    try:
        with pytest.raises(NotFound, match=f"^Blob {digest} not found in artifact store"):
            pull(fresh, remote)
    finally:
        fresh.close()
