"""The prediction log's write-ahead files: each recorded request is appended to a file of
the recording process before the server answers, so a SIGKILL loses none of them.

One ``write`` per request to a file opened for appending, and no fsync: the bytes are in
the kernel's page cache when ``record`` returns, which a killed process keeps (a machine
that loses power loses what the kernel had not written yet, as the tracking journal does).
Each flush starts a new segment, and the segments it wrote are removed once their rows are
stored; a process holds an exclusive lock on its segments, so the next process to open the
log replays the segments of dead processes and leaves live ones alone.

A record is a header (payload length, CRC-32) then the payload; a torn last record (a full
disk, a kill mid-write) is skipped on replay.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from ferryml._leftovers import dead_files
from ferryml.errors import StoreUnavailable

__all__ = ["Segment", "WriteAhead", "dead_segments"]

log = logging.getLogger(__name__)

_SUFFIX = ".predwal"
_HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload


@dataclass
class Segment:
    """One write-ahead file, open and locked by this process."""

    path: Path
    fd: int
    size: int = 0

    def release(self, *, remove: bool) -> None:
        """Close the file, and remove it when its rows are stored."""
        if remove:
            self.path.unlink(missing_ok=True)
        with suppress(OSError):
            os.close(self.fd)


class WriteAhead:
    """This process's current segment in ``folder``. Not thread-safe: the prediction log
    calls it under its own lock, which also orders records with the rows pending in memory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.current: Segment | None = None

    def open(self) -> WriteAhead:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.current = self._new()
        except OSError as e:
            raise StoreUnavailable(
                f"Cannot create the prediction log's write-ahead file in {self.folder}: "
                f"{e.strerror or e}. Set FERRY_HOME to a writable folder."
            ) from e
        return self

    def _new(self) -> Segment:
        path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        # The lock marks the file as a live process's; the kernel drops it when that dies.
        fcntl.flock(fd, fcntl.LOCK_EX)
        return Segment(path, fd)

    def append(self, payload: bytes) -> None:
        """Append one record whole, or raise and leave the file as it was."""
        segment = self.current
        if segment is None:
            raise StoreUnavailable("The prediction log is closed; create a new PredictionLog.")
        data = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        done = 0
        try:
            while done < len(data):
                done += os.write(segment.fd, data[done:])
        except OSError as e:
            if done:
                with suppress(OSError):
                    os.ftruncate(segment.fd, segment.size)
            raise StoreUnavailable(
                f"Cannot append to the prediction log's write-ahead file {segment.path}: "
                f"{e.strerror or e} (a full disk or a file-size limit). This prediction was "
                "not logged; free space in FERRY_HOME and send it again."
            ) from e
        segment.size += len(data)

    def rotate(self) -> Segment:
        """Start a new segment; return the previous one, still locked."""
        previous = self.current
        assert previous is not None
        self.current = self._new()
        return previous

    def close(self, *, remove: bool) -> None:
        if self.current is not None:
            self.current.release(remove=remove)
            self.current = None


def dead_segments(folder: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """The segments in ``folder`` whose process has died, each with its records' payloads,
    locked while the caller stores them; the caller removes a segment once it has."""
    if not folder.is_dir():
        return
    for path, fd in dead_files(folder, _SUFFIX):
        with os.fdopen(os.dup(fd), "rb") as handle:
            payloads = _records(handle.read(), path)
        yield path, payloads


def _records(data: bytes, path: Path) -> list[bytes]:
    payloads = []
    at = 0
    while at + _HEADER.size <= len(data):
        size, crc = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size : at + _HEADER.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            break
        payloads.append(payload)
        at += _HEADER.size + size
    if at < len(data):
        log.warning("Skipping a torn record at the end of %s (%d bytes)", path, len(data) - at)
    return payloads
