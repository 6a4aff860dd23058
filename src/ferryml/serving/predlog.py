"""The prediction log: every prediction a server makes, written in the background.

``PredictionLog.record`` is on the server's hot path: it pickles the request (ids, the
features frame, the outputs), appends it to a write-ahead file in one ``write``, keeps the
references in a list and returns; no Arrow or Parquet work, no store I/O. A server that
batches logs each batch's requests at once (``record_many``, in the thread that predicted
them, before they are answered): one record, one ``write`` and one pending entry a batch,
and none of it on the event loop. Pickling the
frame is most of its cost: a median 0.5-0.65 ms a 1-row request, against 6-8 µs for
keeping the references alone (``benchmarks/predlog.py``, 2 cores at load average 17-20).
A daemon thread flushes what is pending every ``flush_interval`` seconds (sooner once
``max_rows`` rows wait): per deployment, one Parquet blob in the artifact store, then one
index row per blob in the metadata store, in one transaction.

Durability: ``record`` also appends the request to a write-ahead file of this process
(``<FERRY_HOME>/predictions``, one ``write``, no fsync: see ``_predwal``) before it
returns, so a SIGKILL loses no answered prediction: the next process to open a prediction
log stores what a dead one left, each row once (by its prediction id). A flushed row
survives any crash (the blob is written to a temporary file and renamed, the index row is
committed after it), and its write-ahead segment is then removed. ``close()`` flushes
everything, and the server calls it on a graceful stop (SIGTERM); a log still open at
interpreter exit is closed too. A failed flush keeps its rows and retries at the next
interval.

Why Parquet partitions in the artifact store, not one row per prediction in the metadata
store: ``benchmarks/predlog.py`` measures both on the same workloads (50,000 predictions of
10 features: 8 floats, a string, an int). On this shared 2-core machine (load average ~5,
so absolutes are low; the ratios held over repeated runs), in rows/s:

==========================  ===============  ============  =============  ========
workload                    SQLite, Parquet  SQLite, rows  PG, Parquet    PG, rows
==========================  ===============  ============  =============  ========
flush, 1-row requests       23,000           26,000        14,000-24,000  20,000
flush, 100-row requests     424,000          64,000        418,000        56,000
load a window (50 flushes)  647,000          114,000       662,000        181,000
feedback, 1,000 ids         66 ms            46 ms         86 ms          18 ms
==========================  ===============  ============  =============  ========

- Flushing 1-row requests costs the same either way: gathering 1-row frames with
  ``pd.concat`` (~20 µs a request) dominates both. Past that a Parquet partition costs one
  blob and one index row whatever its size, where rows cost a JSON encode and an insert
  each: 6-7x faster for batched requests, and PostgreSQL's round trips do not matter.
- Loading, the monitoring issue's input, reads typed columns: 4-6x faster, and features
  keep their types (integers, datetimes, categories, nullable ints), which JSON loses.
- Feedback must know which ids exist. Ids are time-ordered (``new_prediction_id``), so each
  partition's ``[min_id, max_id]`` in the index narrows a lookup to the blobs written near
  that prediction's time, and only their ``id`` and ``time`` columns are read: slower than
  a primary-key lookup, but tens of ms per 1,000 labels (storing them included; the rows
  figure is the lookup alone), for a batch operation.
- Equally safe: a flush commits atomically either way (blob renamed into place, then its
  index row committed; a crash in between leaves an unindexed blob, never a partial one).
- The cost: small blobs, one per flush, deployment and server process. The flusher merges
  the ones of its deployments older than ``compact_every`` seconds into partitions of up to
  500,000 rows, day by day, every ``compact_every`` seconds (see ``compaction``); the
  format stays the same.

The partition format, and how it is encoded and read, is in ``_partitions``.
"""

from __future__ import annotations

import atexit
import logging
import math
import pickle
import secrets
import threading
import time as _time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, StoreUnavailable
from ferryml.serving._frames import FLOATS, float_columns, float_frame
from ferryml.serving._partitions import (
    FEATURE_PREFIX,
    META_COLUMNS,
    Batch,
    Outputs,
    encode,
    make_batch,
    parquet_bytes,
    read_partition_table,
    read_partitions,
)
from ferryml.serving._predwal import Segment, WriteAhead, dead_segments
from ferryml.store.factory import open_artifact_store, open_prediction_store
from ferryml.store.loop import PredictionPartition

__all__ = [
    "FEATURE_PREFIX",
    "META_COLUMNS",
    "Outputs",
    "PredictionLog",
    "new_prediction_id",
    "read_partition_table",
    "read_partitions",
]

log = logging.getLogger(__name__)


def new_prediction_id() -> str:
    """A new prediction id: 32 hex characters, the time in ms then 80 random bits, so ids
    sort by time and feedback finds the partitions that can hold them."""
    return f"{int(_time.time() * 1000):012x}{secrets.token_hex(10)}"


class PredictionLog:
    """Records predictions cheaply and writes them in the background.

    Args:
        settings: where the metadata and artifact stores are.
        flush_interval: seconds between background flushes.
        max_rows: pending rows that start a flush before the interval is up.
        compact_every: seconds between background compactions of the partitions this
            process wrote (those at least that old); None turns them off.

    The constructor does no I/O; ``open()`` opens the stores and starts the flusher.

    Example:
        >>> with PredictionLog(Settings.resolve()) as predictions:
        ...     predictions.record("churn", "primary", "churn", 3, [new_prediction_id()],
        ...                        frame, [0.82], latency_ms=4.1)
    """

    def __init__(
        self,
        settings: Settings,
        *,
        flush_interval: float = 1.0,
        max_rows: int = 50_000,
        compact_every: float | None = 600.0,
    ) -> None:
        if (
            isinstance(flush_interval, bool)
            or not isinstance(flush_interval, int | float)
            or not 0 < flush_interval < math.inf
        ):
            raise InvalidArgument(
                f"flush_interval must be a positive number of seconds; got {flush_interval!r}."
            )
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise InvalidArgument(f"max_rows must be a whole number >= 1; got {max_rows!r}.")
        if compact_every is not None and not (
            isinstance(compact_every, int | float) and 0 < compact_every < math.inf
        ):
            raise InvalidArgument(
                f"compact_every must be a positive number of seconds or None; got "
                f"{compact_every!r}."
            )
        self.settings = settings
        self.compact_every = compact_every
        self._compacted = _time.monotonic()
        self._deployments: set[str] = set()  # written by this process: compacted by it
        self.flush_interval = float(flush_interval)
        self.max_rows = max_rows
        self._lock = threading.Lock()  # guards _pending, _pending_rows, _closed
        self._flush_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending: list[Batch] = []
        self._pending_rows = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._index: Any = None
        self._opening = threading.Lock()  # the stores open once, by the flusher or a flush()
        self._blobs: Any = None
        self._at_exit: Callable[[], None] | None = None
        self._wal: WriteAhead | None = None
        self._segments: list[Segment] = []  # written ahead, rows not stored yet

    # -- lifecycle -----------------------------------------------------------------------

    def open(self, *, background: bool = False) -> PredictionLog:
        """Open the stores and start the background flusher; return self.

        With ``background``, only the write-ahead file opens here: the flusher opens the
        stores (and stores what dead processes left) after its first interval, so a server
        answers its first requests without that work; a store failing then is logged and
        retried every interval, its rows kept.

        Raises:
            StoreUnavailable: a store cannot be reached, or the log was closed.
        """
        if self._closed:
            raise StoreUnavailable("This prediction log is closed; create a new PredictionLog.")
        if self._thread is not None:
            return self
        if background:
            self._start_write_ahead()
        else:
            self._open_stores()
            try:
                self._start_write_ahead()
                self._recover_opening()
            except BaseException:
                self._index.close()
                raise
        self._thread = threading.Thread(
            target=self._run, args=(background,), name="ferryml-prediction-log", daemon=True
        )
        self._thread.start()
        ref = weakref.ref(self)

        def close_at_exit() -> None:  # the flusher is a daemon: exit would drop its rows
            found = ref()
            if found is not None:
                found.close()

        self._at_exit = close_at_exit
        atexit.register(close_at_exit)
        return self

    def close(self) -> None:
        """Flush everything pending, stop the flusher and close the stores. Idempotent.

        Raises:
            StoreUnavailable: the last flush failed; its rows are lost with this process.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            if self._index is None:  # opened in the background, the stores not yet
                if not self._pending_rows and not self._segments:
                    self._release_write_ahead(remove=True)
                    return
                try:
                    self._open_stores()
                except BaseException:
                    self._release_write_ahead(remove=False)  # the next process stores them
                    raise
        elif self._pending_rows:
            self._open_stores()  # recorded but never opened: still nothing is dropped
        else:
            return
        flushed = False
        try:
            self._flush()
            flushed = True
        finally:
            self._release_write_ahead(remove=flushed)
            self._index.close()
            if hasattr(self._blobs, "close"):  # a team server's: its connections
                self._blobs.close()

    def _open_stores(self) -> None:
        with self._opening:
            if self._index is not None:
                return
            index = open_prediction_store(self.settings)
            try:
                self._blobs = open_artifact_store(self.settings)
            except BaseException:
                index.close()
                raise
            self._index = index  # last: set means both are open

    @property
    def _wal_folder(self) -> Path:
        return Path(self.settings.home) / "predictions"

    def _release_write_ahead(self, *, remove: bool) -> None:
        if self._wal is not None:  # kept on failure: the next process stores the rows
            for segment in self._segments:
                segment.release(remove=remove)
            self._segments = []
            self._wal.close(remove=remove)

    def _start_write_ahead(self) -> None:
        """Start this process's write-ahead file, with what was recorded before ``open``."""
        wal = WriteAhead(self._wal_folder).open()
        with self._lock:
            for batch in self._pending:
                payload = _payload(batch)
                if payload is not None:
                    wal.append(payload)
            self._wal = wal

    def _recover_opening(self) -> None:
        """Store what dead processes left in their write-ahead files; on failure this
        process's file is closed and kept, for the next one to store."""
        try:
            self.recover()
        except BaseException:
            with self._lock:
                wal, self._wal = self._wal, None
            if wal is not None:
                wal.close(remove=False)
            raise

    def _open_in_background(self) -> bool:
        """The flusher's first work when opened in the background: open the stores (once
        the first interval is up), then store what dead processes left. False when the
        log closes first."""
        failing = False
        while not self._stop.wait(self.flush_interval):
            try:
                self._open_stores()
            except Exception as e:  # noqa: BLE001 - the rows stay pending; retried
                level = logging.DEBUG if failing else logging.WARNING
                log.log(level, "Opening the prediction log's stores failed; retried: %s", e)
                failing = True
                continue
            try:
                self.recover()
            except Exception as e:  # noqa: BLE001 - their files stay for the next start
                log.warning("Storing the predictions a stopped server left failed: %s", e)
            return True
        return False

    def recover(self) -> int:
        """Store the rows that dead processes wrote ahead and never stored; return how many.
        A request whose ids are stored already (its process died between storing it and
        removing its file) is skipped: a request is stored in one partition, whole or not.

        Raises:
            StoreUnavailable: a store failed; the files stay for the next attempt.
        """
        stored = 0
        for path, payloads in dead_segments(self._wal_folder):
            batches = [b for b in map(_unpickle, payloads) if b is not None]
            known = self._stored_ids([str(i) for b in batches for i in b[4]])
            fresh = [b for b in batches if not any(str(i) in known for i in b[4])]
            if fresh:
                self._write(fresh)
            stored += sum(len(b[4]) for b in fresh)
            path.unlink(missing_ok=True)
        if stored:
            log.info("Stored %d predictions that a stopped server had not written yet", stored)
        return stored

    def _stored_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        import pyarrow.compute as pc

        wanted = pa.array(sorted(set(ids)), type=pa.string())
        found: set[str] = set()
        for partition in self._index.search_partitions_by_id(min(ids), max(ids)):
            table = read_partition_table(self._blobs.get_bytes(partition.digest), ["id"])
            found.update(table.filter(pc.is_in(table["id"], value_set=wanted))["id"].to_pylist())
        return found

    def __enter__(self) -> PredictionLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending_rows(self) -> int:
        """Rows recorded and not yet flushed."""
        return self._pending_rows

    # -- the hot path --------------------------------------------------------------------

    def record(
        self,
        deployment: str,
        route: str,
        model: str,
        version: int,
        ids: Sequence[str],
        features: pd.DataFrame,
        outputs: Outputs,
        latency_ms: float,
        time: float | None = None,
        request_id: str | None = None,
    ) -> None:
        """Log one request's predictions: row ``i`` of ``features`` got ``outputs[i]``,
        with id ``ids[i]``. ``time`` is seconds since the epoch (default: now);
        ``request_id`` the request's ``X-Request-Id``. The frame and sequences are kept by
        reference until flushed: do not change them afterwards.

        Raises:
            InvalidArgument: the lengths differ, a name is empty or too long, or
                ``features`` is not a DataFrame.
            StoreUnavailable: the log is closed.
        """
        self._add(
            make_batch(
                deployment, route, model, version, ids, features, outputs, latency_ms, time,
                request_id,
            )
        )  # fmt: skip

    def record_many(
        self,
        deployment: str,
        route: str,
        model: str,
        version: int,
        ids: Sequence[str],
        features: pd.DataFrame,
        outputs: Outputs,
        latency_ms: Sequence[float] | np.ndarray,
        request_ids: Sequence[str | None],
        time: float | None = None,
    ) -> None:
        """Log the requests of one predict call at once: as ``record``, with ``latency_ms``
        and ``request_ids`` given row by row. One write-ahead record for them all (and one
        partition), where ``record`` writes one a request.

        Raises:
            InvalidArgument: as ``record``; or ``latency_ms`` or ``request_ids`` do not have
                one value a row.
            StoreUnavailable: the log is closed.
        """
        self._add(
            make_batch(
                deployment, route, model, version, ids, features, outputs, latency_ms, time,
                request_ids, per_row=True,
            )
        )  # fmt: skip

    def _add(self, batch: Batch) -> None:
        n = len(batch[4])
        if n == 0:
            return
        payload = _payload(batch) if self._wal is not None else None
        with self._lock:
            if self._closed:
                raise StoreUnavailable("This prediction log is closed; create a new PredictionLog.")
            if payload is not None and self._wal is not None:
                self._wal.append(payload)
            self._pending.append(batch)
            self._pending_rows += n
            full = self._pending_rows >= self.max_rows
        if full:
            self._wake.set()

    # -- flushing ------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is pending now; return how many rows were written.

        Raises:
            StoreUnavailable: the log is not open, or a store failed (the rows stay pending
                and the flusher retries them).
        """
        if self._thread is None:
            raise StoreUnavailable("The prediction log is not open; call open() first.")
        if self._index is None:  # asked before the flusher opened them (feedback at once)
            self._open_stores()
        return self._flush()

    def _run(self, background: bool = False) -> None:
        if background and not self._open_in_background():
            return
        failing = False
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._flush()
            except Exception as e:  # noqa: BLE001 - the thread must outlive any failure
                # Once per outage, not once per interval.
                level = logging.DEBUG if failing else logging.WARNING
                log.log(
                    level,
                    "Writing the prediction log failed; %d rows are kept in memory and "
                    "retried every %g s: %s",
                    self._pending_rows,
                    self.flush_interval,
                    e,
                )
                failing = True
            else:
                if failing:
                    log.warning("Writing the prediction log works again.")
                failing = False
                self._compact_due()

    def _compact_due(self) -> None:
        """Merge this process's old small partitions, every ``compact_every`` seconds."""
        every = self.compact_every
        if every is None or _time.monotonic() - self._compacted < every:
            return
        self._compacted = _time.monotonic()
        from ferryml.serving.compaction import compact_stores

        try:
            report = compact_stores(
                self._index, self._blobs, sorted(self._deployments), min_age=every
            )
        except Exception as e:  # noqa: BLE001 - the log keeps working uncompacted
            log.warning("Compacting the prediction log failed; it is retried later: %s", e)
            return
        if report.merged:
            log.info("Compacted %d prediction partitions into %d", report.merged, report.written)

    def _flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                batches, self._pending = self._pending, []
                rows, self._pending_rows = self._pending_rows, 0
                # After a failed flush the current file is not rotated, so an outage keeps
                # two files open, not one a second; rows it holds that get stored meanwhile
                # are skipped if it is ever replayed.
                if batches and not self._segments and self._wal and self._wal.current:
                    self._segments.append(self._wal.rotate())
                segments, self._segments = self._segments, []
            if not batches:
                return 0
            try:
                self._write(batches)
            except BaseException:
                with self._lock:  # back in front, in order, for the next attempt
                    self._pending[:0] = batches
                    self._pending_rows += rows
                    self._segments[:0] = segments
                raise
            for segment in segments:
                segment.release(remove=True)
            return rows

    def _write(self, batches: list[Batch]) -> None:
        by_deployment: dict[str, list[Batch]] = defaultdict(list)
        for batch in batches:
            by_deployment[batch[0]].append(batch)
        encoded = []
        for deployment, group in by_deployment.items():
            encoded.extend(encode(deployment, group))
        partitions = []
        for deployment, (table, ids, times) in encoded:
            self._deployments.add(deployment)
            blob = self._blobs.put_bytes(parquet_bytes(table))
            partitions.append(
                PredictionPartition(
                    digest=blob.digest,
                    deployment=deployment,
                    rows=len(ids),
                    min_time=int(times.min()) // 1000,
                    max_time=-(-int(times.max()) // 1000),
                    min_id=min(ids),
                    max_id=max(ids),
                )
            )
        self._index.create_partitions(partitions)


def _payload(batch: Batch) -> bytes | None:
    names = float_columns(batch[5])
    record: tuple[Any, ...] = batch
    if names is not None:  # the common case: an array pickles at a quarter of a frame's cost
        record = (*batch[:5], (FLOATS, names, batch[5].to_numpy()), *batch[6:])
    try:
        return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an object pickle refuses: kept in memory alone
        log.warning(
            "A request of deployment %r cannot be written ahead; it is kept in memory "
            "until the next flush",
            batch[0],
            exc_info=True,
        )
        return None


def _unpickle(payload: bytes) -> Batch | None:
    # The files are this user's, written by ferryml under FERRY_HOME, like the store itself.
    try:
        batch: Batch = pickle.loads(payload)  # noqa: S301
        features: Any = batch[5]
        if isinstance(features, tuple) and features[0] == FLOATS:
            batch = (*batch[:5], float_frame(features[2], features[1]), *batch[6:])
    except Exception:  # noqa: BLE001 - a record no pandas here can read: skipped, not fatal
        log.warning("Skipping a write-ahead prediction record that cannot be read", exc_info=True)
        return None
    return batch
