"""A deployment's recent traffic per route: requests per second, latency and errors, over
time and in total. What the deployment page polls to show its figures live.

Answered requests and their latency come from the prediction log (a request of several
rows counts once); failed ones from the failed-request log (``errorlog``), by status
class. Figures cover what the servers have flushed (every second by default), so they lag
by about that much. Failures refused before a route was chosen (unreadable input,
overload) are counted under the route ``""``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.store.factory import (
    open_artifact_store,
    open_prediction_store,
    open_request_error_store,
)
from ferryml.store.request_errors import RequestErrorCount

if TYPE_CHECKING:
    import numpy as np

    from ferryml.store.loop import PredictionStore

__all__ = ["Bucket", "RouteTraffic", "deployment_traffic"]

MAX_SPAN_S = 24 * 3600
MAX_BUCKETS = 500


@dataclass(frozen=True)
class Bucket:
    """One slice of time: its start (ms), requests (answered and failed), requests per
    second, latencies of the answered ones (ms), and how many failed."""

    start: int
    requests: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int


@dataclass(frozen=True)
class RouteTraffic:
    """A route's traffic over the span: totals, errors by status class (``errors_4xx``:
    the client's, ``errors_5xx``: the server's, overload included), the share of requests
    that failed, the last error's text, and one ``Bucket`` per slice of time."""

    route: str
    version: int
    requests: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    errors_4xx: int
    errors_5xx: int
    error_rate: float
    last_error: str | None
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
    route name; no routes when nothing was logged or failed.

    Raises:
        InvalidArgument: the span or the number of slices is out of range.
    """
    if not 1 <= span_s <= MAX_SPAN_S:
        raise InvalidArgument(f"span_s {span_s} is out of range; use 1 to {MAX_SPAN_S}.")
    if not 1 <= buckets <= MAX_BUCKETS:
        raise InvalidArgument(f"buckets {buckets} is out of range; use 1 to {MAX_BUCKETS}.")
    settings = settings or Settings.resolve()
    end = int((time.time() if now is None else now) * 1000)
    start = end - span_s * 1000
    width = span_s * 1000 / buckets
    index = open_prediction_store(settings)
    try:
        answered = _answered(deployment, index, settings, start, end)
        errors = open_request_error_store(settings, sharing=index)  # its connections
        # slots of whole ms: an error's second lands in the slot that holds its start
        failed = errors.count_request_errors(
            deployment, since=start, until=end, width_ms=max(1, int(width))
        )
        last = {}  # each route's own last error, however busy the others are
        for route in {f.route for f in failed}:
            newest = errors.latest_request_errors(deployment, since=start, limit=1, route=route)
            last[route] = newest[0].error if newest else None
    finally:
        index.close()
    found = []
    for route in sorted({*answered, *(f.route for f in failed)}):
        rows = answered.get(route)
        mine = [f for f in failed if f.route == route]
        found.append(_route(route, rows, mine, last.get(route), start, width, buckets, span_s))
    return found


def _answered(
    deployment: str, index: PredictionStore, settings: Settings, start: int, end: int
) -> dict[str, Any]:
    """The answered requests of ``[start, end)`` per route: time (ms), version, latency."""
    import pandas as pd  # here: the team server starts without the data libraries

    artifacts = open_artifact_store(settings)
    try:
        tables = [
            _requests_of(artifacts.get_bytes(p.digest))
            for p in index.list_partitions(deployment, since=start, until=end)
        ]
    finally:
        artifacts.close()
    frames = [t for t in tables if len(t)]
    if not frames:
        return {}
    frame = pd.concat(frames, ignore_index=True)
    ms = frame["time"].astype("int64").to_numpy() // 1000
    keep = (ms >= start) & (ms < end)
    frame = frame[keep].assign(ms=ms[keep])
    return {str(route): rows for route, rows in frame.groupby("route", sort=True)}


def _requests_of(blob: bytes) -> Any:
    """A partition's requests: its rows with one row per request id (a request of several
    rows is one request, of one latency)."""
    from ferryml.serving.predlog import read_partition_table

    columns = ["time", "route", "version", "latency_ms"]
    try:
        frame = read_partition_table(blob, [*columns, "request_id"]).to_pandas()
    except (KeyError, ValueError):  # a partition from before request ids were kept
        return read_partition_table(blob, columns).to_pandas()
    alone = frame["request_id"].isna()
    return frame[alone | ~frame.duplicated(["route", "request_id"])]


def _route(
    route: str,
    rows: Any,
    failed: list[RequestErrorCount],
    last: str | None,
    start: int,
    width: float,
    buckets: int,
    span_s: int,
) -> RouteTraffic:
    import numpy as np

    failures = np.zeros(buckets, dtype=np.int64)
    for f in failed:
        failures[min(max(f.slot, 0), buckets - 1)] += f.count
    empty = np.zeros(0)
    if rows is not None:
        slot = ((rows["ms"].to_numpy() - start) // width).astype(int).clip(0, buckets - 1)
        latency = rows["latency_ms"].to_numpy()
        version = int(rows["version"].iloc[-1])
    else:
        slot, latency = np.zeros(0, dtype=int), empty
        version = max((f.version for f in failed), default=0)
    slots = tuple(
        _bucket(int(start + i * width), latency[slot == i], int(failures[i]), width / 1000)
        for i in range(buckets)
    )
    total = _bucket(start, latency, int(failures.sum()), span_s)
    client = sum(f.count for f in failed if f.status < 500)
    return RouteTraffic(
        route=route,
        version=version,
        requests=total.requests,
        rate=total.rate,
        p50_ms=total.p50_ms,
        p99_ms=total.p99_ms,
        errors=total.errors,
        errors_4xx=client,
        errors_5xx=total.errors - client,
        error_rate=total.errors / total.requests if total.requests else 0.0,
        last_error=last,
        buckets=slots,
    )


def _bucket(start: int, latency: np.ndarray, errors: int, seconds: float) -> Bucket:
    import numpy as np

    requests = len(latency) + errors
    if not len(latency):
        return Bucket(start, requests, requests / seconds, None, None, errors)
    p50, p99 = np.percentile(latency, [50, 99])
    return Bucket(start, requests, requests / seconds, float(p50), float(p99), errors)
