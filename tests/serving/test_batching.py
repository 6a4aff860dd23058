"""Micro-batching: concurrent requests share predict calls, each caller gets its own rows'
outputs, and a bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml.errors import Conflict, InvalidArgument
from ferryml.serving._frames import float_columns, float_frame
from ferryml.serving.batching import MicroBatcher


class Model:
    """Predicts 10 * x; rejects negative x, like a model whose signature check fails."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(frame))
        self.threads.add(threading.current_thread().name)
        if (frame["x"] < 0).any():
            raise ValueError("x must be >= 0")
        return (frame["x"] * 10).to_numpy()


def rows(*values: int) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values)})


def test_concurrent_single_rows_share_predict_calls_and_each_caller_gets_its_own_output() -> None:
    model = Model()

    async def main() -> list[list[Any]]:
        batcher = MicroBatcher(model.predict, max_batch_rows=64, max_wait_ms=20)
        try:
            return await asyncio.gather(*(batcher.submit(rows(i)) for i in range(40)))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[10 * i] for i in range(40)]
    assert len(model.calls) < 40
    assert sum(model.calls) == 40


def test_multi_row_requests_keep_their_row_order() -> None:
    model = Model()
    requests = [rows(*range(100 * i, 100 * i + i + 1)) for i in range(10)]

    async def main() -> list[list[Any]]:
        batcher = MicroBatcher(model.predict, max_batch_rows=64, max_wait_ms=20)
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in requests))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [list(r["x"] * 10) for r in requests]


def test_a_batch_never_exceeds_max_batch_rows_but_a_larger_request_runs_alone() -> None:
    model = Model()
    seen: list[tuple[int, float]] = []

    async def main() -> list[list[Any]]:
        batcher = MicroBatcher(
            model.predict,
            max_batch_rows=8,
            max_wait_ms=20,
            on_batch=lambda n, s: seen.append((n, s)),
        )
        try:
            singles = [batcher.submit(rows(i)) for i in range(30)]
            return await asyncio.gather(*singles, batcher.submit(rows(*range(20))))
        finally:
            await batcher.close()
            assert batcher.stats.rows == 50
            assert batcher.stats.batches == len(model.calls)
            assert sum(batcher.stats.sizes.values()) == len(model.calls)

    results = asyncio.run(main())
    assert results[-1] == [10 * i for i in range(20)]
    assert sorted(model.calls) == sorted(n for n, _ in seen)
    assert 20 in model.calls
    assert max(n for n in model.calls if n != 20) <= 8
    assert all(s >= 0 for _, s in seen)


def test_a_lone_request_is_answered_after_about_max_wait() -> None:
    model = Model()

    async def main() -> float:
        batcher = MicroBatcher(model.predict, max_wait_ms=50)
        try:
            start = time.perf_counter()
            assert await batcher.submit(rows(3)) == [30]
            return time.perf_counter() - start
        finally:
            await batcher.close()

    elapsed = asyncio.run(main())
    assert 0.04 <= elapsed < 0.5


def test_a_full_batch_leaves_without_waiting_for_max_wait() -> None:
    model = Model()

    async def main() -> float:
        batcher = MicroBatcher(model.predict, max_batch_rows=4, max_wait_ms=10_000)
        try:
            start = time.perf_counter()
            await asyncio.gather(*(batcher.submit(rows(i)) for i in range(4)))
            return time.perf_counter() - start
        finally:
            await batcher.close()

    assert asyncio.run(main()) < 2.0
    assert model.calls == [4]


def test_a_poisoned_request_fails_alone_and_its_neighbours_succeed() -> None:
    model = Model()

    async def main() -> tuple[list[Any], MicroBatcher]:
        batcher = MicroBatcher(model.predict, max_batch_rows=64, max_wait_ms=20)
        try:
            found = await asyncio.gather(
                batcher.submit(rows(1)),
                batcher.submit(rows(2, -1)),
                batcher.submit(rows(3, 4)),
                return_exceptions=True,
            )
            return found, batcher
        finally:
            await batcher.close()

    (first, poisoned, last), batcher = asyncio.run(main())
    assert first == [10]
    assert last == [30, 40]
    assert isinstance(poisoned, ValueError)
    with pytest.raises(ValueError, match="x must be >= 0"):
        raise poisoned
    assert model.calls[0] == 5  # tried together first, then each request alone
    assert (batcher.stats.split_batches, batcher.stats.failed_requests) == (1, 1)


def test_close_answers_pending_requests_now_and_refuses_new_ones() -> None:
    model = Model()

    async def main() -> tuple[list[Any], float]:
        batcher = MicroBatcher(model.predict, max_wait_ms=10_000)
        start = time.perf_counter()
        # gather starts the submits in order, so all three are pending when close() runs
        *answers, _ = await asyncio.gather(
            batcher.submit(rows(1)),
            batcher.submit(rows(2)),
            batcher.submit(rows(3)),
            batcher.close(),
        )
        elapsed = time.perf_counter() - start
        with pytest.raises(Conflict, match="shutting down"):
            await batcher.submit(rows(4))
        await batcher.close()  # a second close does nothing
        return answers, elapsed

    answers, elapsed = asyncio.run(main())
    assert answers == [[10], [20], [30]]
    assert elapsed < 2.0


def test_predict_runs_off_the_event_loop_thread() -> None:
    model = Model()

    async def main() -> None:
        batcher = MicroBatcher(model.predict, max_wait_ms=0)
        try:
            assert await batcher.submit(rows(1)) == [10]
            assert await batcher.submit(rows()) == []
        finally:
            await batcher.close()

    asyncio.run(main())
    assert threading.current_thread().name not in model.threads
    assert model.calls == [1]


def test_predict_returning_the_wrong_number_of_outputs_is_an_error() -> None:
    async def main() -> None:
        batcher = MicroBatcher(lambda frame: [0], max_wait_ms=0)
        try:
            await batcher.submit(rows(1, 2))
        finally:
            await batcher.close()

    with pytest.raises(InvalidArgument, match="returned 1 outputs for 2 rows"):
        asyncio.run(main())


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(InvalidArgument, match="max_batch_rows >= 1"):
        MicroBatcher(Model().predict, max_batch_rows=0)


def test_after_sees_each_batch_in_predicts_thread_before_its_callers_are_answered() -> None:
    model = Model()
    seen: list[tuple[list[int], list[int], list[Any], str]] = []
    answered: list[str] = []

    def after(frame: pd.DataFrame, outputs: Any, tags: list[Any]) -> None:
        assert answered == []  # no caller of this batch has its answer yet
        name = threading.current_thread().name
        seen.append((frame["x"].tolist(), list(outputs), tags, name))

    async def main() -> list[list[Any]]:
        batcher = MicroBatcher(model.predict, max_batch_rows=64, max_wait_ms=20, after=after)

        async def one(values: tuple[int, ...], tag: str) -> list[Any]:
            found = await batcher.submit(rows(*values), tag)
            answered.append(tag)
            return found

        try:
            return list(await asyncio.gather(one((1,), "a"), one((2, 3), "b"), one((4,), "c")))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [[10], [20, 30], [40]]
    assert len(seen) == 1
    values, outputs, tags, thread = seen[0]
    assert (values, outputs, tags) == ([1, 2, 3, 4], [10, 20, 30, 40], ["a", "b", "c"])
    assert thread != threading.current_thread().name and thread in model.threads


def test_what_after_raises_fails_the_batch_and_each_request_is_tried_alone() -> None:
    model = Model()

    def after(frame: pd.DataFrame, outputs: Any, tags: list[Any]) -> None:
        if "bad" in tags:
            raise OSError("No space left on device")

    async def main() -> list[Any]:
        batcher = MicroBatcher(model.predict, max_wait_ms=20, after=after)
        try:
            return await asyncio.gather(
                batcher.submit(rows(1), "ok"),
                batcher.submit(rows(2), "bad"),
                return_exceptions=True,
            )
        finally:
            await batcher.close()

    ok, bad = asyncio.run(main())
    assert ok == [10]
    assert isinstance(bad, OSError)
    assert model.calls == [2, 1, 1]


def test_float_frames_are_stacked_into_one_float_frame_for_predict() -> None:
    frames: list[pd.DataFrame] = []

    def predict(frame: pd.DataFrame) -> np.ndarray:
        frames.append(frame)
        return frame["a"].to_numpy()

    async def main() -> list[list[Any]]:
        batcher = MicroBatcher(predict, max_wait_ms=20)
        try:
            return await asyncio.gather(
                *(
                    batcher.submit(float_frame(np.array([[i, -i]], float), ["a", "b"]))
                    for i in (1, 2)
                )
            )
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [[1.0], [2.0]]
    (frame,) = frames
    assert float_columns(frame) == ("a", "b")
    assert frame.to_numpy().tolist() == [[1.0, -1.0], [2.0, -2.0]]
    assert frame.index.tolist() == [0, 1]
