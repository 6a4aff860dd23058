"""Where data work runs: in this process, or on a Dask cluster.

Pipelines (``pipelines.executors.DaskExecutor``) and data work (profiling, drift, batch
inference over a partitioned dataset) reach a cluster the same way: ``connect`` a
scheduler's address, or start a LocalCluster for the call. Without ``--executor`` or
``executor=``, a project whose ``ferry.yaml`` has a ``dask:`` section with an ``address``
uses that cluster::

    dask:
      address: tcp://scheduler:8786
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ferryml.errors import InvalidArgument, StoreUnavailable

__all__ = ["Runner", "connect", "runner"]

T = TypeVar("T")
R = TypeVar("R")


def connect(address: str | None, workers: int | None = None) -> tuple[Any, Any]:
    """A Dask ``Client`` of the scheduler at ``address``, or of a new LocalCluster of
    ``workers`` processes (2 by default) on 127.0.0.1; and that cluster (None for an
    address), which the caller closes after the client.

    Raises:
        InvalidArgument: Dask is not installed.
        StoreUnavailable: the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise InvalidArgument("The dask executor needs Dask: pip install 'ferryml[dask]'.") from e
    try:
        if address:
            return Client(address, timeout="10s"), None
        cluster = LocalCluster(
            n_workers=workers or 2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port: 8787 may be another cluster's
        )
        return Client(cluster), cluster
    except (OSError, TimeoutError) as e:
        raise StoreUnavailable(
            f"Cannot reach the Dask scheduler at {address}: {e}. Check the address "
            "(tcp://host:8786) and that the scheduler is running."
        ) from e


class Runner:
    """Runs one function over many items, here or on a cluster; results in item order.

    ``name`` is ``local`` or ``dask``. Locally, each result is computed when the caller
    asks for it, so at most one item's work is in memory at a time.
    """

    def __init__(self, client: Any = None) -> None:
        self.client = client
        self.name = "local" if client is None else "dask"

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        if self.client is None:
            yield from map(fn, items)
            return
        futures = self.client.map(fn, list(items), pure=False)
        try:
            for future in futures:
                yield future.result()  # a task's error is raised here, with its type
        finally:
            self.client.cancel(futures)

    def scatter(self, value: Any) -> Any:
        """``value`` as sent to every worker once (a model), or as is locally."""
        if self.client is None:
            return value
        return self.client.scatter(value, broadcast=True, hash=False)


@contextmanager
def runner(
    executor: Any = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    root: Any = None,
) -> Iterator[Runner]:
    """A ``Runner`` for ``executor``: ``"local"``, ``"dask"`` (the scheduler at ``address``,
    else a LocalCluster of ``workers`` processes for the call) or a ``distributed.Client``
    to use as is. ``None`` means ``dask`` at ``ferry.yaml``'s ``dask.address`` when the
    project at ``root`` has one, else ``local``.

    Raises:
        InvalidArgument: an unknown executor, or Dask is not installed.
        StoreUnavailable: the scheduler cannot be reached.
    """
    if executor is None or (executor == "dask" and not address):
        configured = _configured_address(root)
        if executor is None:
            executor = "dask" if configured or address else "local"
        address = address or configured
    if executor == "local":
        yield Runner()
        return
    if executor != "dask" and not hasattr(executor, "map"):
        raise InvalidArgument(f"Unknown executor {executor!r}: use local or dask.")
    if executor != "dask":
        yield Runner(executor)
        return
    client, cluster = connect(address, workers)
    try:
        yield Runner(client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _configured_address(root: Any) -> str | None:
    if root is None:
        return None
    from ferryml.config import read_config

    section = read_config(root).dask
    return None if section is None else section.address
