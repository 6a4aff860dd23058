"""Many small files travel in packs: push then pull gives the same bytes, an interrupted
push resumes without sending again what arrived, loose remotes stay readable, and one
file can be pulled out of a pack alone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.data.transfer import PACK_MIN, pull, push
from ferryml.data.workspace import Workspace
from ferryml.errors import IntegrityError
from ferryml.store import packs

N = 300


@pytest.fixture
def ws(tmp_path: Path, s3_env: str) -> Workspace:
    root = tmp_path / "project"
    (root / "data" / "many").mkdir(parents=True)
    for i in range(N):
        size = (i * 977) % 9000  # empty files and sizes across a page
        (root / "data" / "many" / f"{i:03d}.bin").write_bytes(os.urandom(size))
    (root / "data" / "many" / "copy.bin").write_bytes(
        (root / "data" / "many" / "007.bin").read_bytes()
    )  # the same content twice: stored and sent once
    workspace = Workspace(Settings.resolve(cwd=root, environ={}))
    yield workspace
    workspace.close()


def _keys(s3_client: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _fresh(ws: Workspace) -> Workspace:
    """The same project with its local store and cache gone, as on a new machine."""
    shutil.rmtree(ws.settings.home / "artifacts")
    shutil.rmtree(ws.settings.home / "cache")
    return Workspace(ws.settings)


def _flip_a_byte(s3_client: Any, bucket: str, prefix: str) -> str:
    """Flip a byte in the middle of the first pack under ``prefix``; return its key."""
    pack = next(k for k in _keys(s3_client, bucket, prefix) if k.endswith(".pack"))
    body = bytearray(s3_client.get_object(Bucket=bucket, Key=pack)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3_client.put_object(Bucket=bucket, Key=pack, Body=bytes(body))
    return pack


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_packed_push_then_pull_gives_back_every_byte(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 256 * 1024)  # several packs from little data
    remote = f"s3://{s3_bucket}/{tmp_path.name}"
    before = _files(ws.root / "data" / "many")
    version = ws.add("data/many")
    report = push(ws, remote)
    distinct = len({e.digest for e in ws.manifest(version).entries})
    assert distinct == N  # copy.bin shares 007.bin's blob
    assert (report.copied, report.present) == (distinct + 1, 0)  # and the manifest
    keys = _keys(s3_client, s3_bucket, f"{tmp_path.name}/")
    packed = [k for k in keys if k.endswith(".pack")]
    assert len(packed) >= 4 and len([k for k in keys if k.endswith(".idx")]) == len(packed)
    assert len(keys) < 2 * len(packed) + 5  # the blobs are not loose as well
    assert push(ws, remote).copied == 0

    shutil.rmtree(ws.root / "data" / "many")
    fresh = _fresh(ws)
    try:
        pulled = pull(fresh, remote)
        assert pulled.copied == distinct + 1
        fresh.checkout()
        assert _files(ws.root / "data" / "many") == before
    finally:
        fresh.close()


def test_an_interrupted_push_sends_again_only_the_packs_that_did_not_arrive(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(packs, "PACK_BYTES", 256 * 1024)
    remote = f"s3://{s3_bucket}/{tmp_path.name}"
    ws.add("data/many")
    first = push(ws, remote)
    index = sorted(k for k in _keys(s3_client, s3_bucket, tmp_path.name) if k.endswith(".idx"))
    # As if the push had stopped after writing this pack and before its index.
    lost = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=index[0])["Body"].read())
    s3_client.delete_object(Bucket=s3_bucket, Key=index[0])
    again = push(ws, remote)
    assert (again.copied, again.present) == (len(lost["blobs"]), first.copied - len(lost["blobs"]))
    assert again.copied < first.copied // 2


def test_a_remote_of_loose_blobs_and_packs_is_pulled_whole(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    remote = f"s3://{s3_bucket}/{tmp_path.name}"
    few = ws.root / "data" / "few"
    few.mkdir()
    for i in range(PACK_MIN // 10):
        (few / f"{i}.txt").write_text(f"line {i}\n")
    ws.add("data/few")
    push(ws, remote)  # few blobs: loose, as remotes written before packs hold them
    assert _keys(s3_client, s3_bucket, f"{tmp_path.name}/packs/") == []
    ws.add("data/many")
    push(ws, remote)
    assert _keys(s3_client, s3_bucket, f"{tmp_path.name}/packs/")
    expected = {name: _files(ws.root / "data" / name) for name in ("few", "many")}
    for name in expected:
        shutil.rmtree(ws.root / "data" / name)
    fresh = _fresh(ws)
    try:
        pull(fresh, remote)
        fresh.checkout()
        assert {name: _files(ws.root / "data" / name) for name in expected} == expected
    finally:
        fresh.close()


def test_one_file_is_pulled_out_of_a_pack_alone(
    ws: Workspace, s3_bucket: str, tmp_path: Path
) -> None:
    remote = f"s3://{s3_bucket}/{tmp_path.name}"
    ws.add("data/many")
    single = ws.root / "data" / "one.bin"
    shutil.copyfile(ws.root / "data" / "many" / "123.bin", single)
    ws.add("data/one.bin")
    assert push(ws, remote).copied == N + 2  # two manifests; one.bin's bytes are packed once
    fresh = _fresh(ws)
    try:
        report = pull(fresh, remote, ["data/one.bin"])
        assert report.copied == 2  # the file and its manifest
        assert len(fresh.artifacts.list_digests()) == 2
        single.unlink()
        fresh.checkout("data/one.bin")
        assert single.read_bytes() == (ws.root / "data" / "many" / "123.bin").read_bytes()
    finally:
        fresh.close()


def test_corrupt_packs_and_indexes_are_named_and_nothing_is_stored(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    remote = f"s3://{s3_bucket}/{tmp_path.name}"
    ws.add("data/many")
    push(ws, remote)
    pack = _flip_a_byte(s3_client, s3_bucket, tmp_path.name)
    fresh = _fresh(ws)
    try:
        with pytest.raises(IntegrityError, match=r"^Blob [0-9a-f]{64} in pack .* is corrupt"):
            pull(fresh, remote)
        index = pack[: -len(".pack")] + ".idx"
        s3_client.put_object(Bucket=s3_bucket, Key=index, Body=b"{")
        with pytest.raises(IntegrityError, match="is not a ferryml pack index"):
            pull(fresh, remote)
        # An index claiming a blob larger than any pack is refused before anything is read.
        huge = {"format": packs._FORMAT, "blobs": [["ab" * 32, 0, 1 << 40]]}
        s3_client.put_object(Bucket=s3_bucket, Key=index, Body=json.dumps(huge).encode())
        with pytest.raises(IntegrityError, match="is not a ferryml pack index"):
            pull(fresh, remote)
    finally:
        fresh.close()


def _clone(ws: Workspace, dest: Path) -> Workspace:
    """The project on another machine: its files and metadata, none of its blobs."""
    shutil.copytree(ws.root, dest, ignore=shutil.ignore_patterns("artifacts", "cache"))
    return Workspace(Settings.resolve(cwd=dest, environ={}))


def _pulled(ws: Workspace, remote: str, folder: str) -> dict[str, bytes]:
    """The folder's files as pulled from ``remote`` and checked out in ``ws``."""
    try:
        pull(ws, remote)
        shutil.rmtree(ws.root / folder)
        ws.checkout(folder)
        return _files(ws.root / folder)
    finally:
        ws.close()


def test_a_corrupt_pack_is_repaired_by_a_push_with_repair(
    ws: Workspace, s3_bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    remote = f"s3://{s3_bucket}/{tmp_path.name}"
    before = _files(ws.root / "data" / "many")
    ws.add("data/many")
    push(ws, remote)
    _flip_a_byte(s3_client, s3_bucket, tmp_path.name)
    other = _clone(ws, tmp_path / "other")
    try:
        with pytest.raises(IntegrityError, match=r"ferry data push --repair"):
            pull(other, remote)
    finally:
        other.close()
    assert push(ws, remote).copied == 0  # packed blobs count as there: a plain push repairs none
    report = push(ws, remote, repair=True)
    assert report.repaired == report.copied == 1  # one blob spans the flipped byte
    assert push(ws, remote, repair=True).repaired == 0  # whole now
    assert _pulled(_clone(ws, tmp_path / "third"), remote, "data/many") == before


def test_a_corrupt_or_missing_loose_blob_is_sent_again_by_a_push_with_repair(
    tmp_path: Path,
) -> None:
    root = tmp_path / "project"
    (root / "data" / "few").mkdir(parents=True)
    for i in range(5):
        (root / "data" / "few" / f"{i}.bin").write_bytes(os.urandom(1000 + i) * (1 + 400 * i))
    before = _files(root / "data" / "few")
    remote_root = tmp_path / "remote"
    remote = remote_root.as_uri()
    workspace = Workspace(Settings.resolve(cwd=root, environ={}))
    try:
        workspace.add("data/few")
        push(workspace, remote)
        blobs = sorted(p for p in (remote_root / "blobs").rglob("*") if p.is_file())
        large = max(blobs, key=lambda p: p.stat().st_size)
        small = min(blobs, key=lambda p: p.stat().st_size)
        for damaged in (small, large):  # same size, other bytes: only reading it tells
            damaged.chmod(0o644)
            data = bytearray(damaged.read_bytes())
            data[0] ^= 0xFF
            damaged.write_bytes(bytes(data))
        gone = next(p for p in blobs if p not in (small, large))
        gone.unlink()
        report = push(workspace, remote, repair=True)
        assert report.repaired == 2  # the missing one is merely missing: copied, not repaired
        assert report.copied == 3
        other = _clone(workspace, tmp_path / "other")
    finally:
        workspace.close()
    assert _pulled(other, remote, "data/few") == before
