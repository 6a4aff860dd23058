"""A download through a team server that is cut short resumes from what arrived, is checked
against its digest, and leaves nothing under its name (nor beside it) when it fails."""

from __future__ import annotations

import json
import re
import resource
import signal
import threading
import time
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
    shift: int = 0  # a resumed answer starts this many bytes before the offset asked
    length: bool = True  # whether an answer announces its Content-Length
    content_range: bool = True  # whether a part says where it starts
    down_for: float = 0.0  # after a cut, requests are hung up on for this long (a restart)
    down_until: float = 0.0
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


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
            if time.monotonic() < state.down_until:  # hang up without an answer
                self.close_connection = True
                return
            match = re.fullmatch(r"bytes=(\d+)-", asked or "")
            start = int(match.group(1)) - state.shift if match and state.honours_range else 0
            headers = {"Content-Type": "application/octet-stream"}
            if start and state.content_range:
                headers["Content-Range"] = f"bytes {start}-{len(state.data) - 1}/{len(state.data)}"
            body = state.data[start:]
            if state.cut_at:  # announce the whole rest, send part, hang up
                if state.length:
                    headers["Content-Length"] = str(len(body))
                self._head(206 if start else 200, headers)
                self.wfile.write(body[: state.cut_at.pop(0) - start])
                self.wfile.flush()
                self.close_connection = True
                state.down_until = time.monotonic() + state.down_for
                return
            if not state.length:  # the body ends where the connection closes
                self._head(206 if start else 200, headers)
                self.wfile.write(body)
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
    server.handle_error = lambda *args: None  # a client that hung up early: no traceback
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    store = HttpArtifactStore(ServerClient(state.url, "t"))
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


def test_a_download_that_stops_arriving_fails_after_the_retry_time_and_leaves_nothing(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, _ = stub
    state.cut_at = [1000] * 100  # every resumed answer cut before its first byte
    store = HttpArtifactStore(ServerClient(state.url, "t", retry_seconds=0.5))
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match=r"Downloading blob \w+ from http://.* fail"):
            store.get_file(_digest(DATA), tmp_path / "blob.bin")
    finally:
        store.close()
    assert time.monotonic() - started >= 0.5  # waited between attempts, not all at once
    assert list(tmp_path.iterdir()) == []
    assert 2 < len(state.ranges) < 10


def test_a_download_resumes_after_a_server_restart(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at, state.down_for = [1_500_003], 0.4  # down for 0.4 s after the cut
    got = store.get_file(_digest(DATA), tmp_path / "blob.bin")
    assert got.read_bytes() == DATA
    assert state.ranges[0] is None and set(state.ranges[1:]) == {"bytes=1500003-"}
    assert len(state.ranges) > 2


def test_a_download_that_keeps_arriving_resumes_as_often_as_it_is_cut(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at = [100_000 * (i + 1) for i in range(10)]
    got = store.get_file(_digest(DATA), tmp_path / "blob.bin")
    assert got.read_bytes() == DATA
    assert len(state.ranges) == 11


def test_a_resumed_answer_from_another_offset_starts_the_file_over(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at, state.shift = [1_500_003], 1000  # resumes 1000 bytes early, and says so
    got = store.get_file(_digest(DATA), tmp_path / "blob.bin", verify=False)
    assert got.read_bytes() == DATA
    assert state.ranges == [None, "bytes=1500003-", None]


def test_a_part_that_does_not_say_where_it_starts_is_never_written_as_the_rest(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at, state.shift, state.content_range = [1_500_003], 1000, False
    store.restore_small(_digest(DATA), tmp_path / "blob.bin", len(DATA))  # unverified
    assert (tmp_path / "blob.bin").read_bytes() == DATA
    assert state.ranges == [None, "bytes=1500003-", None]


def test_a_small_file_cut_short_without_a_length_is_resumed_to_its_size(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    state, store = stub
    state.cut_at, state.length = [1_500_003], False  # the end of the body is the hang-up
    store.restore_small(_digest(DATA), tmp_path / "blob.bin", len(DATA))
    assert (tmp_path / "blob.bin").read_bytes() == DATA
    assert state.ranges == [None, "bytes=1500003-"]


@pytest.mark.parametrize("length", [True, False])
def test_a_small_file_of_another_size_never_lands_under_its_name(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path, length: bool
) -> None:
    state, store = stub
    state.length = length
    with pytest.raises(IntegrityError, match=rf"has {len(DATA)} bytes, not {len(DATA) + 1}"):
        store.restore_small(_digest(DATA), tmp_path / "blob.bin", len(DATA) + 1)
    assert list(tmp_path.iterdir()) == []


def test_a_download_onto_a_full_disk_fails_at_once_naming_the_file(
    stub: tuple[Stub, HttpArtifactStore], tmp_path: Path
) -> None:
    # As tests/faults/test_disk_full.py does: a file-size limit stands in for a full disk.
    state, store = stub
    dest = tmp_path / "blob.bin"
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG, not die
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limits[1]))
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.get_file(_digest(DATA), dest)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert str(raised.value) == (
        f"Cannot write {dest}: File too large. Free space on its disk (or raise its "
        "file-size limit) and download again."
    )
    assert state.ranges == [None]  # not retried: the server is not at fault
    assert list(tmp_path.iterdir()) == []
