"""A deployment's recent traffic per route, from its prediction log: requests per second
and latency, over time and in total. What the deployment page polls to show its figures
live.

Figures cover what the servers' logs have flushed (every second by default), so they lag
by about that much; a request that failed is not logged, so errors are the model
server's to count (``/metrics``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.store.factory import open_artifact_store, open_prediction_store

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Bucket", "RouteTraffic", "deployment_traffic"]

MAX_SPAN_S = 24 * 3600
MAX_BUCKETS = 500


@dataclass(frozen=True)
class Bucket:
    """One slice of time: its start (ms), requests, requests per second, latencies (ms)."""

    start: int
    requests: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class RouteTraffic:
    """A route's traffic over the span: totals and one ``Bucket`` per slice of time."""

    route: str
    version: int
    requests: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    buckets: tuple[Bucket, ...]


def deployment_traffic(
    deployment: str,
    *,
    span_s: int = 900,
    buckets: int = 30,
    settings: Settings | None = None,
    now: float | None = None,
) -> list[RouteTraffic]:
    """Each route's traffic over the last ``span_s`` seconds in ``buckets`` slices, by
    route name; no routes when nothing was logged.

    Raises:
        InvalidArgument: the span or the number of slices is out of range.
    """
    import pandas as pd  # here: the team server starts without the data libraries

    from ferryml.serving.predlog import read_partition_table

    if not 1 <= span_s <= MAX_SPAN_S:
        raise InvalidArgument(f"span_s {span_s} is out of range; use 1 to {MAX_SPAN_S}.")
    if not 1 <= buckets <= MAX_BUCKETS:
        raise InvalidArgument(f"buckets {buckets} is out of range; use 1 to {MAX_BUCKETS}.")
    settings = settings or Settings.resolve()
    end = int((time.time() if now is None else now) * 1000)
    start = end - span_s * 1000
    store, artifacts = open_prediction_store(settings), open_artifact_store(settings)
    try:
        columns = ["time", "route", "version", "latency_ms"]
        tables = [
            read_partition_table(artifacts.get_bytes(p.digest), columns)
            for p in store.list_partitions(deployment, since=start, until=end)
        ]
    finally:
        store.close()
        artifacts.close()
    frames = [t.to_pandas() for t in tables if t.num_rows]
    if not frames:
        return []
    frame = pd.concat(frames, ignore_index=True)
    ms = frame["time"].astype("int64").to_numpy() // 1000
    frame = frame[(ms >= start) & (ms < end)].assign(ms=ms[(ms >= start) & (ms < end)])
    width = span_s * 1000 / buckets
    frame["slot"] = ((frame["ms"] - start) // width).astype(int).clip(0, buckets - 1)
    found = []
    for route, rows in frame.groupby("route", sort=True):
        slots = []
        for slot in range(buckets):
            latency = rows.loc[rows["slot"] == slot, "latency_ms"].to_numpy()
            slots.append(_bucket(int(start + slot * width), latency, width / 1000))
        latency = rows["latency_ms"].to_numpy()
        total = _bucket(start, latency, span_s)
        found.append(
            RouteTraffic(
                str(route),
                int(rows["version"].iloc[-1]),
                total.requests,
                total.rate,
                total.p50_ms,
                total.p99_ms,
                tuple(slots),
            )
        )
    return found


def _bucket(start: int, latency: np.ndarray, seconds: float) -> Bucket:
    import numpy as np

    if not len(latency):
        return Bucket(start, 0, 0.0, None, None)
    p50, p99 = np.percentile(latency, [50, 99])
    return Bucket(start, len(latency), len(latency) / seconds, float(p50), float(p99))
