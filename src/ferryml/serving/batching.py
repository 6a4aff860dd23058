"""Adaptive micro-batching: concurrent requests to a model server are gathered into one
``predict`` call, run in a thread so the event loop stays free.

A batch leaves when it holds ``max_batch_rows`` rows or ``max_wait_ms`` after its first
request arrived, whichever comes first; while every thread is busy, requests keep gathering,
so batches grow with the load. An idle batcher waits on an event and costs nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ferryml.errors import Conflict, InvalidArgument
from ferryml.serving._frames import stack

__all__ = ["BatchStats", "MicroBatcher"]

Outputs = Sequence[Any] | np.ndarray
Predict = Callable[[pd.DataFrame], Outputs]
After = Callable[[pd.DataFrame, Outputs, list[Any]], None]


@dataclass
class BatchStats:
    """Counters since the batcher was made, for ``/metrics``."""

    batches: int = 0  # predict calls, including a failed batch's requests re-run alone
    rows: int = 0
    requests: int = 0
    failed_requests: int = 0
    split_batches: int = 0  # batches that failed whole and were re-run request by request
    seconds: float = 0.0  # time spent in predict
    sizes: Counter[int] = field(default_factory=Counter)  # rows of a predict call -> calls


@dataclass
class _Request:
    frame: pd.DataFrame
    future: asyncio.Future[list[Any]]
    arrived: float
    tag: Any = None


class MicroBatcher:
    """Gather concurrent ``submit`` calls into batched ``predict`` calls.

    Args:
        predict: the model's predict; takes a DataFrame, returns one output per row.
        max_batch_rows: a batch holds at most this many rows (a larger request runs alone).
        max_wait_ms: how long the first request of a batch waits for company.
        executor: where predict runs; default a pool of ``threads`` threads, shut down by
            ``close``.
        threads: predict calls in flight at once.
        on_batch: called after each predict call with its rows and seconds (must not raise).
        after: called in predict's thread after each predict call, before its callers are
            answered, with the batch's frame, its outputs and each request's ``tag`` (in row
            order): work per batch rather than per request, off the event loop. What it
            raises fails the batch, as predict's errors do.

    Example:
        >>> batcher = MicroBatcher(model.predict, max_batch_rows=64, max_wait_ms=2)
        >>> outputs = await batcher.submit(frame)  # one output per row of frame
    """

    def __init__(
        self,
        predict: Predict,
        *,
        max_batch_rows: int = 64,
        max_wait_ms: float = 2.0,
        executor: concurrent.futures.Executor | None = None,
        threads: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
        after: After | None = None,
    ) -> None:
        if max_batch_rows < 1 or max_wait_ms < 0 or threads < 1:
            raise InvalidArgument(
                f"MicroBatcher needs max_batch_rows >= 1, max_wait_ms >= 0 and threads >= 1; "
                f"got {max_batch_rows}, {max_wait_ms} and {threads}."
            )
        self._predict, self._on_batch, self._after = predict, on_batch, after
        self.max_batch_rows, self.max_wait = max_batch_rows, max_wait_ms / 1000
        self._owns_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="ferry-predict"
        )
        self._slots = asyncio.Semaphore(threads)
        self._wake = asyncio.Event()
        self._pending: deque[_Request] = deque()
        self._rows = 0
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.stats = BatchStats()

    async def submit(self, frame: pd.DataFrame, tag: Any = None) -> list[Any]:
        """Predict ``frame`` (one or more rows) in a batch; its outputs, in row order.
        ``tag`` goes to ``after`` beside the request's rows.

        Raises:
            Conflict: the batcher is closed.
            Exception: whatever predict raised on this request alone.
        """
        if self._closed:
            raise Conflict("The model is shutting down and takes no new requests; retry.")
        if len(frame) == 0:
            return []
        loop = asyncio.get_running_loop()
        request = _Request(frame, loop.create_future(), loop.time(), tag)
        self._pending.append(request)
        self._rows += len(frame)
        self.stats.requests += 1
        if len(self._pending) == 1 or self._rows >= self.max_batch_rows:
            self._wake.set()
        if self._runner is None:
            self._runner = loop.create_task(self._run())
        return await request.future

    async def close(self) -> None:
        """Take no new requests, answer the pending ones now (without waiting for
        company), wait for every predict call in flight, and free the default executor."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._runner is not None:
            await self._runner
        await asyncio.gather(*self._in_flight)
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending or not self._closed:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            left = self._pending[0].arrived + self.max_wait - loop.time()
            if self._rows < self.max_batch_rows and left > 0 and not self._closed:
                self._wake.clear()
                try:
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            await self._slots.acquire()
            batch = self._take()
            task = loop.create_task(self._execute(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        while self._pending:
            request = self._pending[0]
            if batch and rows + len(request.frame) > self.max_batch_rows:
                break
            self._pending.popleft()
            self._rows -= len(request.frame)
            if not request.future.done():  # a caller that gave up is not predicted
                batch.append(request)
                rows += len(request.frame)
        return batch

    async def _execute(self, batch: list[_Request]) -> None:
        if not batch:
            return
        try:
            outputs = await self._call(batch)
        except Exception as e:  # noqa: BLE001 - predict's error belongs to its callers
            if len(batch) == 1:
                return self._fail(batch[0], e)
            self.stats.split_batches += 1
            for request in batch:  # one bad request must not fail its neighbours
                await self._execute([request])
            return
        start = 0
        for request in batch:
            end = start + len(request.frame)
            if not request.future.done():
                request.future.set_result(_as_list(outputs[start:end]))
            start = end

    def _fail(self, request: _Request, error: Exception) -> None:
        self.stats.failed_requests += 1
        if not request.future.done():
            request.future.set_exception(error)

    async def _call(self, batch: list[_Request]) -> Outputs:
        rows = sum(len(r.frame) for r in batch)
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            return await loop.run_in_executor(self._executor, self._predict_batch, batch)
        finally:
            seconds = time.perf_counter() - start
            self.stats.batches += 1
            self.stats.rows += rows
            self.stats.seconds += seconds
            self.stats.sizes[rows] += 1
            if self._on_batch is not None:
                self._on_batch(rows, seconds)

    def _predict_batch(self, batch: list[_Request]) -> Outputs:
        """In predict's thread: the batch's frames stacked, predicted, handed to ``after``."""
        frame = stack([r.frame for r in batch])
        outputs = self._predict(frame)
        if len(outputs) != len(frame):
            raise InvalidArgument(
                f"The model returned {len(outputs)} outputs for {len(frame)} rows; "
                "predict must return one output per row."
            )
        if self._after is not None:
            self._after(frame, outputs, [r.tag for r in batch])
        return outputs


def _as_list(outputs: Outputs) -> list[Any]:
    return outputs.tolist() if isinstance(outputs, np.ndarray) else list(outputs)
