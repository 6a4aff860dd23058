"""Where step attempts run: in this process one at a time, in a pool of processes, or on a
Dask cluster. All three run the same ``execute`` on the same tasks, so outputs, caching,
failures and retries behave alike."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from typing import Any, Protocol

from ferryml.errors import InvalidArgument
from ferryml.pipelines._task import StepOutcome, StepTask, execute, execute_shipped, ship

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "ProcessExecutor", "make_executor"]


class Executor(Protocol):
    name: str

    def submit(self, task: StepTask) -> Any: ...

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        """The handles among ``handles`` that are done (waits for at least one, or timeout)."""
        ...

    def outcome(self, handle: Any) -> StepOutcome: ...

    def abandon(self, handle: Any) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Steps one after another, in this process (the default: no start-up cost)."""

    name = "local"

    def submit(self, task: StepTask) -> cf.Future[StepOutcome]:
        future: cf.Future[StepOutcome] = cf.Future()
        future.set_result(execute(task))
        return future

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        return list(handles)

    def outcome(self, handle: Any) -> StepOutcome:
        return handle.result()

    def abandon(self, handle: Any) -> None:
        pass

    def close(self) -> None:
        pass


class ProcessExecutor(LocalExecutor):
    """Independent steps at the same time, in a pool of worker processes."""

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        # fork: workers start in milliseconds and see the pipeline's module as loaded.
        self._pool = cf.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("fork")
        )

    def submit(self, task: StepTask) -> cf.Future[StepOutcome]:
        return self._pool.submit(execute, task)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def abandon(self, handle: Any) -> None:
        handle.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Steps on a Dask cluster: the scheduler at ``address``, or a LocalCluster started for
    the run. Workers read and write artifacts through the artifact store, so workers on
    other machines work the same way when the store is shared (S3, a shared folder)."""

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        from ferryml._dask import connect

        self._client, self._cluster = connect(address, workers)

    def submit(self, task: StepTask) -> Any:
        # Bytes, not the task: the scheduler unpickles what it is given, and neither it nor
        # the workers need the project's files to take a step that travels with its code.
        return self._client.submit(execute_shipped, ship(task), pure=False)

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        from distributed import wait

        try:
            done, _ = wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    def outcome(self, handle: Any) -> StepOutcome:
        return handle.result()

    def abandon(self, handle: Any) -> None:
        handle.cancel()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(
    kind: str = "local", *, workers: int | None = None, address: str | None = None
) -> Executor:
    """``local`` (in-process, one at a time), ``process`` or ``dask``."""
    if kind == "local":
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    if kind == "dask":
        return DaskExecutor(address, workers)
    raise InvalidArgument(f"Unknown executor {kind!r}: use local, process or dask.")


def now() -> float:
    return time.monotonic()
