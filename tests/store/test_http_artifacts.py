"""A download through a team server that is cut short resumes from what arrived, is checked
against its digest, and leaves nothing under its name (nor beside it) when it fails."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import blake3
import pytest

from ferryml.errors import IntegrityError, StoreUnavailable
from ferryml.store.http import ServerClient
from ferryml.store.http_artifacts import HttpArtifactStore

DATA = bytes(range(256)) * (12 * 1024) + b"tail"  # 3 MiB and 4 bytes: 1 MiB reads and a tail


@dataclass
class Stub:
    """What the stub server answers for its one blob, and the Range headers it was sent."""

    data: bytes = DATA
    cut_at: list[int] = field(default_factory=list)  # a GET's body stops at these offsets
    honours_range: bool = True
    ranges: list[str | None] = field(default_factory=list)


@pytest.fixture
def stub() -> Iterator[tuple[Stub, HttpArtifactStore]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path.endswith("/url"):  # not a signing server: blobs come through it
                body = json.dumps({"url": None, "expires": 3600}).encode()
                self._answer(200, {"Content-Type": "application/json"}, body)
                return
            asked = self.headers.get("Range")
            state.ranges.append(asked)
            match = re.fullmatch(r"bytes=(\d+)-", asked or "")
            start = int(match.group(1)) if match and state.honours_range else 0
            headers = {"Content-Type": "application/octet-stream"}
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(state.data) - 1}/{len(state.data)}"
            body = state.data[start:]
            if state.cut_at:  # announce the whole rest, send part, hang up
                headers["Content-Length"] = str(len(body))
                self._head(206 if start else 200, headers)
                self.wfile.write(body[: state.cut_at.pop(0) - start])
                self.wfile.flush()
                self.close_connection = True
                return
            self._answer(206 if start else 200, headers, body)

        def _head(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self._head(status, {**headers, "Content-Length": str(len(body))})
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store = HttpArtifactStore(ServerClient(f"http://127.0.0.1:{server.server_port}", "t"))
    try:
        yield state, store
    finally:
        store.close()
        server.shutdown()
        server.server_close()
        thread.join()


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def test_a_download_cut_short_resumes_from_what_arrived(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at = [1_500_003, 2_600_001]  # cut twice, neither on a read's boundary
    got = store.get_file(_digest(DATA), tmp_path / "blob.bin")
    assert got.read_bytes() == DATA
    assert state.ranges == [None, "bytes=1500003-", "bytes=2600001-"]
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]


def test_a_resumed_download_whose_range_is_ignored_starts_over(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at, state.honours_range = [1_500_003], False  # a proxy that drops Range
    got = store.get_file(_digest(DATA), tmp_path / "blob.bin", verify=False)
    assert got.read_bytes() == DATA  # unverified, yet not the first part twice
    assert state.ranges == [None, "bytes=1500003-"]


def test_a_download_that_does_not_match_its_digest_leaves_nothing(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at = [1_000_000]
    with pytest.raises(IntegrityError, match="does not match its digest"):
        store.get_file(_digest(b"other bytes"), tmp_path / "blob.bin")
    assert list(tmp_path.iterdir()) == []


def test_a_download_cut_every_time_fails_saying_so_and_leaves_nothing(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at = [1000 * (i + 1) for i in range(5)]  # every attempt cut
    with pytest.raises(StoreUnavailable, match=r"Downloading blob \w+ from http://.* failed"):
        store.get_file(_digest(DATA), tmp_path / "blob.bin")
    assert list(tmp_path.iterdir()) == []
    assert len(state.ranges) == 5
