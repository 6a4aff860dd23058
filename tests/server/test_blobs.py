"""Blobs stream through the team server; an upload cut short resumes, and bytes that do
not hash to their digest are never stored."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import pytest
from team_world import TeamServer, running_server

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.store.artifacts import ArtifactStore
from ferryml.store.http import ServerClient
from ferryml.store.http_artifacts import HttpArtifactStore

pytestmark = pytest.mark.e2e


@contextmanager
def _store(server: TeamServer, role: str = "writer") -> Iterator[HttpArtifactStore]:
    store = HttpArtifactStore(ServerClient(server.url, server.tokens[role]))
    try:
        yield store
    finally:
        store.close()


def test_an_upload_cut_short_resumes_from_what_the_server_holds(
    shared_team_server: TeamServer,
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 7)
    digest = blake3.blake3(data).hexdigest()
    headers = {"Upload-Length": str(len(data))}
    with shared_team_server.http() as http:
        r = http.put(f"/api/v1/blobs/{digest}", content=data[:2_000_000], headers=headers)
        assert r.status_code == 202 and r.json()["offset"] == 2_000_000
        assert http.get(f"/api/v1/uploads/{digest}").json()["offset"] == 2_000_000
        assert http.head(f"/api/v1/blobs/{digest}").status_code == 404
    with _store(shared_team_server) as store:
        assert store.put_bytes(data).digest == digest  # sends only the rest
    with shared_team_server.http("reader") as http:
        r = http.get(f"/api/v1/blobs/{digest}", headers={"Range": "bytes=5242880-"})
        assert r.status_code == 206 and r.content == data[5242880:]
    with _store(shared_team_server, "reader") as reader:
        assert reader.get_bytes(digest) == data


def test_bytes_that_do_not_match_their_digest_are_refused(
    shared_team_server: TeamServer,
) -> None:
    data = b"the real bytes"
    wrong = blake3.blake3(b"other bytes").hexdigest()
    with shared_team_server.http() as http:
        r = http.put(
            f"/api/v1/blobs/{wrong}", content=data, headers={"Upload-Length": str(len(data))}
        )
        assert r.status_code == 422 and "nothing was stored" in r.json()["error"]["message"]
        assert http.head(f"/api/v1/blobs/{wrong}").status_code == 404
        r = http.get("/api/v1/blobs/..%2F..%2Fetc%2Fpasswd")
        assert r.status_code in (404, 422)
        r = http.get("/api/v1/uploads/NOT-A-DIGEST")
        assert r.status_code == 422 and "64 lowercase hex" in r.json()["error"]["message"]


def test_clients_sending_the_same_blob_at_once_store_it_once(
    shared_team_server: TeamServer,
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with _store(shared_team_server) as store:
                store.put_bytes(data)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with _store(shared_team_server, "reader") as reader:
        assert reader.get_bytes(blake3.blake3(data).hexdigest()) == data


def test_files_stream_both_ways(shared_team_server: TeamServer, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        for _ in range(24):
            f.write(os.urandom(1 << 20))
    with _store(shared_team_server) as store:
        blob = store.put_file(source)
        back = store.get_file(blob.digest, tmp_path / "back" / "big.bin")
        assert store.exists(blob.digest) and store.size(blob.digest) == 24 << 20
    assert back.read_bytes() == source.read_bytes()


def test_an_unknown_server_setting_is_refused() -> None:
    settings = Settings.resolve(environ={"FERRY_TRACKING_URI": "http://127.0.0.1:9"})
    assert settings.artifacts_url == "http://127.0.0.1:9"
    with pytest.raises(InvalidArgument, match="works on the database itself"):
        from ferryml.store.factory import open_sql_store

        open_sql_store(settings)


def test_a_writer_reusing_a_blob_keeps_it_from_gc_and_a_read_does_not(
    shared_team_server: TeamServer,
) -> None:
    data = os.urandom(4096)
    local = ArtifactStore(shared_team_server.artifacts_url)
    with _store(shared_team_server) as store:
        digest = store.put_bytes(data).digest
    path = local.local_path(digest)
    assert path is not None
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    with _store(shared_team_server, "reader") as reader:
        assert reader.exists(digest)  # a read: the blob stays as old as it was
    assert digest in local.list_stale_blobs(time.time() - 60)
    with _store(shared_team_server) as store:
        assert store.put_bytes(data).digest == digest  # stored already: reused, not sent
    assert digest not in local.list_stale_blobs(time.time() - 60)
    assert path.read_bytes() == data


def test_a_server_with_fsync_takes_a_large_upload_resumed_half_way(
    tmp_path: Path, store_url: str
) -> None:
    # Past the 64 MiB between writebacks, so the uploads written back as they arrive are
    # resumed and checked like any other.
    data = os.urandom(70 << 20)
    digest = blake3.blake3(data).hexdigest()
    for server in running_server(store_url, tmp_path, args=("--fsync",)):
        with server.http() as http:
            r = http.put(
                f"/api/v1/blobs/{digest}",
                content=data[: 66 << 20],
                headers={"Upload-Length": str(len(data))},
            )
            assert r.status_code == 202 and r.json()["offset"] == 66 << 20
        with _store(server) as store:
            assert store.put_bytes(data).digest == digest
        with _store(server, "reader") as reader:
            assert reader.get_bytes(digest) == data


@pytest.mark.parametrize("fsync", [True, False])
def test_an_upload_is_synced_before_it_is_acknowledged_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    import asyncio

    import httpx

    from ferryml.server.team.app import create_team_app

    synced: list[str] = []
    real_fsync = os.fsync

    def watched(fd: int) -> None:  # the real call, and which file it was for
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watched)
    settings = Settings.resolve(home=tmp_path / ".ferry", environ={})
    data = os.urandom(3 << 20)
    digest = blake3.blake3(data).hexdigest()
    app = create_team_app(settings, auth=False, fsync=fsync)

    async def upload() -> httpx.Response:
        async with app.router.lifespan_context(app):
            synced.clear()  # opening the stores may sync folders
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"Upload-Length": str(len(data))}
                return await client.put(f"/api/v1/blobs/{digest}", content=data, headers=headers)

    r = asyncio.run(upload())
    assert r.status_code == 201, r.text
    blob = ArtifactStore(settings.artifacts_url).open().local_path(digest)
    assert blob is not None and blob.read_bytes() == data
    files = [p for p in synced if not Path(p).is_dir()]
    # The upload's file is synced under its temporary name, then renamed into place.
    assert bool(files) is fsync, synced


@pytest.mark.parametrize("size", [(4 << 20) - 1, 4 << 20, (12 << 20) + 7, (32 << 20) + 7])
def test_an_upload_hashed_while_it_is_written_is_stored_whole_and_checked(
    tmp_path: Path, size: int
) -> None:
    # Around the 4 MiB batch the server writes at once: a full batch is hashed on one
    # thread while another writes it; a smaller one on a single thread. The body comes in
    # 64 KiB chunks, as from a socket (in one piece, there would be one batch): batches
    # follow one another, each written and hashed only after the one before.
    import asyncio

    import httpx

    from ferryml.server.team.app import create_team_app

    settings = Settings.resolve(home=tmp_path / ".ferry", environ={})
    data = os.urandom(size)
    digest = blake3.blake3(data).hexdigest()
    wrong = blake3.blake3(data[:-1] + b"?").hexdigest()
    app = create_team_app(settings, auth=False, fsync=False)

    async def upload() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"Upload-Length": str(size)}
                return [
                    await client.put(f"/api/v1/blobs/{d}", content=chunks(), headers=headers)
                    for d in (wrong, digest)
                ]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, size, 64 << 10):
            yield data[start : start + (64 << 10)]

    refused, stored = asyncio.run(upload())
    assert refused.status_code == 422 and "nothing was stored" in refused.text
    assert stored.status_code == 201, stored.text
    store = ArtifactStore(settings.artifacts_url).open()
    blob = store.local_path(digest)
    assert blob is not None and blob.read_bytes() == data
    assert store.size(wrong) is None


def test_an_upload_whose_hash_fails_is_failed_only_once_its_write_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upload's file is closed once the error is raised: a write still running then
    # would go to a closed file descriptor, or to another file that reused its number.
    import asyncio

    from ferryml.server.team.blobs import _BATCH, _Sink

    writes: list[str] = []
    real_writev = os.writev

    def slow_writev(fd: int, views: list[memoryview]) -> int:
        time.sleep(0.2)  # slower than the failing hash, to be still writing when it fails
        written = real_writev(fd, views)
        writes.append("ended")
        return written

    class FailingHasher:
        def update(self, chunk: bytes) -> None:
            raise RuntimeError("the hash failed")

    monkeypatch.setattr(os, "writev", slow_writev)
    fd = os.open(tmp_path / "upload", os.O_WRONLY | os.O_CREAT)

    async def receive() -> list[str]:
        sink = _Sink(fd, FailingHasher(), durable=False)
        await sink.put([b"x" * _BATCH])
        with pytest.raises(RuntimeError, match="the hash failed"):
            await sink.drain()
        return list(writes)  # the writes ended when the error reached the caller

    try:
        assert asyncio.run(receive()) == ["ended"]
    finally:
        os.close(fd)
    assert (tmp_path / "upload").stat().st_size == _BATCH
