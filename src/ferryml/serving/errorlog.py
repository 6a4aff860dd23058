"""The failed-request log: every prediction request a model server answers with an error
(bad input, a model that failed, overload), counted per deployment, route, model version,
status and second, and stored beside the prediction log, which holds answered predictions
only. The deployment page reads both to show each route's error rate.

Why counts in their own table, not rows in the prediction log: the log's readers
(monitors, feedback, ``ferryml.predictions.load``, compaction, the review queue) would all
have to skip failed rows, and a failure has no features or output to keep. Counts per
second also bound what a flood of failures costs: the memory and rows grow with the
routes and statuses that fail, not with the requests (an error's text is cut to
``ERROR_TEXT_LIMIT`` characters, and only the last one of a second is kept).

Durability as the prediction log's: ``record`` appends the failure to a write-ahead file
of this process (one ``write``, see ``_predwal``) before the server answers, so a SIGKILL
loses no count; the next process stores what a dead one left, once (each row names the
segment and the flush that took it, and storing those rows again changes nothing). Stores open
only when there is something to store: a server that answers no error costs nothing here
but one idle thread.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, StoreUnavailable
from ferryml.serving._predwal import Segment, WriteAhead, dead_segments
from ferryml.store.factory import open_request_error_store
from ferryml.store.request_errors import ERROR_TEXT_LIMIT, RequestErrors

__all__ = ["RequestErrorLog"]

log = logging.getLogger(__name__)

Key = tuple[str, str, str, int, int, int]  # batch, deployment, route, version, status, ms


class RequestErrorLog:
    """Counts failed requests cheaply and stores them in the background.

    Args:
        settings: where the metadata store is, and ``home`` for the write-ahead files.
        flush_interval: seconds between background flushes.
        max_keys: distinct (deployment, route, version, status, second) counts held in
            memory while the store cannot be reached; failures past it are dropped and
            counted (``dropped``).

    The constructor does no I/O; ``open()`` starts the write-ahead file and the flusher.
    """

    def __init__(
        self, settings: Settings, *, flush_interval: float = 1.0, max_keys: int = 10_000
    ) -> None:
        self.settings = settings
        self.flush_interval = flush_interval
        self.max_keys = max_keys
        self.dropped = 0
        self._lock = threading.Lock()  # guards _pending, _segments, _wal
        self._flush_lock = threading.Lock()
        self._pending: dict[Key, list[Any]] = {}  # key -> [count, last error]
        self._flushes = 0  # flushes begun: part of a batch's name
        self._segments: list[Segment] = []  # written ahead, counts not stored yet
        self._wal: WriteAhead | None = None
        self._store: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    @property
    def folder(self) -> Path:
        return Path(self.settings.home) / "request-errors"

    def open(self) -> RequestErrorLog:
        """Start the write-ahead file and the flusher, which first stores what dead
        processes left; return self.

        Raises:
            StoreUnavailable: the write-ahead folder cannot be created.
        """
        if self._thread is None:
            self._wal = WriteAhead(self.folder).open()
            self._thread = threading.Thread(
                target=self._run, name="ferryml-request-errors", daemon=True
            )
            self._thread.start()
        return self

    def record(
        self,
        deployment: str,
        route: str,
        version: int,
        status: int,
        error: str,
        time: float | None = None,
    ) -> None:
        """Count one failed request. Never raises: it runs while the server answers an
        error, which must go out whatever happens here."""
        second = int(_time.time() if time is None else time) * 1000
        # The text may echo what the client sent; a NUL no database stores.
        text = error[:ERROR_TEXT_LIMIT].replace("\x00", "\ufffd")
        with self._lock:
            # A batch is this segment's counts taken by one flush: a flush stores each key
            # once, and a replay of the segment groups its records the same way.
            stem = self._wal.current.path.stem if self._wal and self._wal.current else ""
            batch = f"{stem}.{self._flushes}"
            record = [deployment, route, int(version), int(status), second, text, batch]
            key: Key = (batch, deployment, route, int(version), int(status), second)
            found = self._pending.get(key)
            if found is None and len(self._pending) >= self.max_keys:
                self.dropped += 1
                self._warn("the store has been unreachable for long")
                return
            if self._wal is not None and self._wal.current is not None:
                try:
                    self._wal.append(orjson.dumps(record))
                except StoreUnavailable as e:  # a full disk: counted in memory alone
                    self._warn(str(e))
            if found is None:
                self._pending[key] = [1, text]
            else:
                found[0] += 1
                found[1] = text

    def _warn(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Failed requests are not all counted: %s", why)

    # -- flushing ------------------------------------------------------------------------

    def flush(self) -> int:
        """Store what is counted now; return how many failures.

        Raises:
            StoreUnavailable: the store failed; the counts stay for the next attempt.
        """
        with self._flush_lock:
            with self._lock:
                # After a failed flush the current segment is not rotated, so an outage
                # keeps two files open, not one a flush; its later counts are new batches.
                if self._pending and not self._segments and self._wal and self._wal.current:
                    self._segments.append(self._wal.rotate())
                pending, self._pending = self._pending, {}
                self._flushes += 1
                segments, self._segments = self._segments, []
            if not pending:
                return 0
            try:
                self._opened().create_request_errors(_rows(pending.items()))
            except InvalidArgument as e:  # rows no retry will store: dropped, not a block
                log.warning("Dropping failed requests' counts the store refuses: %s", e)
                with self._lock:
                    self.dropped += sum(count for count, _ in pending.values())
                for segment in segments:
                    segment.release(remove=True)
                return 0
            except BaseException:
                with self._lock:  # back for the next attempt
                    for key, (count, text) in pending.items():
                        found = self._pending.setdefault(key, [0, text])
                        found[0] += count
                    self._segments[:0] = segments
                raise
            for segment in segments:
                segment.release(remove=True)
            return sum(count for count, _ in pending.values())

    def recover(self) -> int:
        """Store the counts dead processes wrote ahead; return how many failures."""
        stored = 0
        for path, payloads in dead_segments(self.folder):
            pending: dict[Key, list[Any]] = {}
            for payload in payloads:
                try:
                    deployment, route, version, status, second, text, *batch = orjson.loads(payload)
                except (orjson.JSONDecodeError, ValueError, TypeError):
                    continue
                found = pending.setdefault(
                    (batch[0] if batch else path.stem, deployment, route, version, status, second),
                    [0, text],
                )
                found[0] += 1
                found[1] = text
            try:
                if pending:
                    self._opened().create_request_errors(_rows(pending.items()))
            except InvalidArgument as e:  # never storable: set aside, not retried forever
                log.warning("Setting aside %s, whose counts the store refuses: %s", path, e)
                path.rename(path.with_suffix(".refused"))
                continue
            stored += sum(count for count, _ in pending.values())
            path.unlink(missing_ok=True)
        return stored

    def _opened(self) -> Any:
        if self._store is None:
            self._store = open_request_error_store(self.settings)
        return self._store

    def _run(self) -> None:
        recovered = False
        failing = False
        while not self._stop.wait(self.flush_interval):
            try:
                if not recovered:
                    self.recover()
                    recovered = True
                self.flush()
            except Exception as e:  # noqa: BLE001 - the thread must outlive any failure
                if not failing:
                    log.warning("Storing failed requests' counts failed; retried: %s", e)
                failing = True
            else:
                failing = False

    def close(self) -> None:
        """Store what is counted, stop the flusher and close the store. Idempotent; on a
        failure the write-ahead files stay for the next process."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        stored = False
        try:
            self.flush()
            stored = True
        except Exception as e:  # noqa: BLE001 - the files stay for the next process
            log.warning("Storing failed requests' counts failed; the next start will: %s", e)
        finally:
            with self._lock:
                for segment in self._segments:
                    segment.release(remove=stored)
                self._segments = []
                if self._wal is not None:
                    self._wal.close(remove=stored)
                    self._wal = None
            if self._store is not None:
                self._store.close()
                self._store = None


def _rows(pending: Iterable[tuple[Key, list[Any]]]) -> list[RequestErrors]:
    return [
        RequestErrors(batch, deployment, route, version, status, second, count, text)
        for (batch, deployment, route, version, status, second), (count, text) in pending
    ]
