"""The write-ahead journal: every accepted value is appended to a local file before the
``log_*`` call returns, and a background thread applies the values to the store in batches.

A value therefore survives a SIGKILL of the process right after the call (the kernel holds
the appended bytes), logging costs microseconds, and concurrent writers share the store's
write lock per batch rather than per value. The next process to open the journal folder
replays the journals of dead processes; replaying is idempotent.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ferryml._fork import renew_after_fork
from ferryml._leftovers import dead_files
from ferryml.errors import StoreUnavailable
from ferryml.store.base import TrackingStore
from ferryml.store.records import (
    ArtifactRecord,
    EndRecord,
    InputRecord,
    MetricRecord,
    ParamRecord,
    Record,
    StartRecord,
    TagRecord,
    metric_record,
)

__all__ = ["Journal"]

log = logging.getLogger("ferryml.journal")

_KINDS: dict[type, str] = {
    MetricRecord: "m",
    ParamRecord: "p",
    TagRecord: "t",
    ArtifactRecord: "a",
    InputRecord: "i",
    StartRecord: "r",
    EndRecord: "e",
}
_TYPES = {kind: cls for cls, kind in _KINDS.items()}
_SUFFIX = ".journal"
_REPLAY_CHUNK = 20_000


def encode(record: Record) -> bytes:
    return _line(record).encode()


def _line(record: Record) -> str:
    if type(record) is MetricRecord:
        return _metric_line(*record)
    return json.dumps([_KINDS[type(record)], *record]) + "\n"


def _metric_line(
    run_id: str, key: str, step: int, timestamp: int, value: float, is_nan: bool
) -> str:
    if is_nan or value - value != 0:  # NaN or infinite: JSON's spelling, via the encoder
        return json.dumps(["m", run_id, key, step, timestamp, value, is_nan]) + "\n"
    # Keys are validated to letters, digits and _-./: and space: nothing to escape.
    return f'["m","{run_id}","{key}",{step},{timestamp},{value!r},false]\n'


def decode(lines: Iterable[bytes]) -> Iterator[Record]:
    """Records of a journal file; a torn last line (a full disk) is skipped."""
    for line in lines:
        try:
            kind, *fields = json.loads(line)
            yield _TYPES[kind](*fields)
        except (ValueError, KeyError, TypeError):
            log.warning("skipping an unreadable journal line: %r", line[:200])


class Journal:
    """One process's journal over one store.

    Args:
        folder: where journal files live (``<FERRY_HOME>/journal``).
        store: where batches are applied.
        interval: seconds between background flushes.
        batch: pending records that trigger a flush before the interval ends.
    """

    def __init__(
        self,
        folder: Path,
        store: TrackingStore,
        *,
        interval: float = 0.5,
        batch: int = 4_000,
        rotate_bytes: int = 64 << 20,
    ) -> None:
        self._folder = folder
        self._store = store
        self._interval = interval
        self._batch = batch
        self._rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[Record] = []
        self._open_runs: set[str] = set()
        self._fd: int | None = None
        self._path: Path | None = None
        self._written = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()
        self.last_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> Journal:
        """Replay journals that dead processes left, then start this process's own."""
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(
                f"Cannot create the journal folder {self._folder}: {e.strerror or e}. "
                "Set FERRY_HOME to a writable folder."
            ) from e
        self.recover()
        self._start()
        _close_at_exit(self)
        renew_after_fork(self, _forked)
        return self

    def _start(self) -> None:
        self._path = self._folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # The lock marks the file as owned by a live process; the kernel drops it on death.
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._written = 0
        self._thread = threading.Thread(target=self._loop, name="ferryml-journal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Apply what is pending and remove this process's journal file."""
        _OPEN.discard(self)
        if self._closed or self._fd is None:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except StoreUnavailable as e:  # keep the file: the next process replays it
            log.warning(
                "ferryml could not apply logged values before exit (%s); "
                "they stay in %s and are applied on the next start",
                e,
                self._path,
            )
            os.close(self._fd)
            self._fd = None
            return
        os.close(self._fd)
        self._fd = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    # -- writing -----------------------------------------------------------------------

    def append_metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        """The hot path: one metric, one ``write`` call, no JSON encoder."""
        record = metric_record(run_id, key, value, timestamp, step)
        self._append(_metric_line(*record).encode(), (record,))

    def append(self, records: Sequence[Record]) -> None:
        if records:
            self._append("".join(map(_line, records)).encode(), records)

    def _append(self, data: bytes, records: Sequence[Record]) -> None:
        if self._pid != os.getpid():
            self._reopen_in_child()
        if self._fd is None:
            raise StoreUnavailable("The journal is closed; values can no longer be logged.")
        with self._lock:
            self._write(self._fd, data)
            self._written += len(data)
            self._pending.extend(records)
            for record in records:
                if type(record) is StartRecord:
                    self._open_runs.add(record.run_id)
                elif type(record) is EndRecord:
                    self._open_runs.discard(record.run_id)
            size = len(self._pending)
        if size >= self._batch:
            self._wake.set()

    def _write(self, fd: int, data: bytes) -> None:
        """Append ``data`` whole or not at all: a value is accepted only once all its bytes
        are in the file, and a torn line must not swallow the next one once space is back."""
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError as e:
            if done:
                os.ftruncate(fd, self._written)
            raise StoreUnavailable(
                f"Cannot append to the journal {self._path}: {e.strerror or e} (a full disk "
                "or a file-size limit). The value was not logged; free space in FERRY_HOME and "
                "log it again. Values logged before it are kept."
            ) from e

    def flush(self) -> None:
        """Apply every pending record to the store now.

        Raises:
            StoreUnavailable: the store refused the batch; the values stay journaled.
        """
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._store.write_records(batch)
            except Exception as e:
                with self._lock:
                    self._pending[:0] = batch
                self.last_error = e
                raise StoreUnavailable(
                    f"Could not write {len(batch)} logged values to the store: "
                    f"{str(e).rstrip('.')}. They are "
                    "kept in the local journal and written when the store is reachable."
                ) from e
            self.last_error = None
            self._maybe_rotate()

    def _maybe_rotate(self) -> None:
        with self._lock:
            if self._pending or self._written < self._rotate_bytes or self._fd is None:
                return
            os.ftruncate(self._fd, 0)
            keep = b"".join(encode(StartRecord(r)) for r in sorted(self._open_runs))
            os.write(self._fd, keep)
            self._written = len(keep)

    def _loop(self) -> None:
        delay = self._interval
        while not self._closed:
            self._wake.wait(delay)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
                delay = self._interval
            except StoreUnavailable as e:
                log.warning("%s Retrying in %.1f s.", e, delay)
                delay = min(delay * 2, 30.0)

    # -- recovery ----------------------------------------------------------------------

    def recover(self) -> int:
        """Replay the journals of processes that died; returns how many records."""
        replayed = 0
        for path, fd in dead_files(self._folder, _SUFFIX, skip=self._path):
            replayed += self._replay(fd)
            path.unlink(missing_ok=True)
        return replayed

    def _replay(self, fd: int) -> int:
        with os.fdopen(os.dup(fd), "rb") as handle:
            records = list(decode(handle))
        started = {r.run_id for r in records if type(r) is StartRecord}
        ended = {r.run_id for r in records if type(r) is EndRecord}
        for start in range(0, len(records), _REPLAY_CHUNK):
            self._store.write_records(records[start : start + _REPLAY_CHUNK])
        self._store.mark_killed(started - ended)
        return len(records)

    def _reopen_in_child(self) -> None:
        # A forked child shares the parent's file and lock; it needs a journal of its own.
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._pending = []
            self._open_runs = set()
            self._closed = False
            self._start()


# Process-wide, as atexit is: one hook closes every journal still open at exit (a hook per
# journal would pile up in a process that opens many); a collected journal drops out.
_OPEN: weakref.WeakSet[Journal] = weakref.WeakSet()


def _close_at_exit(journal: Journal) -> None:
    _register_exit_hook()
    _OPEN.add(journal)


@functools.cache
def _register_exit_hook() -> None:
    atexit.register(_close_all)


def _close_all() -> None:
    for journal in list(_OPEN):
        journal.close()


def _forked(journal: Journal) -> None:
    # Another thread may have held these at the fork; the child gets fresh ones.
    journal._lock = threading.Lock()
    journal._flush_lock = threading.Lock()
    journal._wake = threading.Event()
    if journal._fd is not None:
        os.close(journal._fd)
        journal._fd = None
        journal._pid = -1  # the next append reopens
