"""What the server does with a request, apart from HTTP: pick the route (weights, sticky
keys, shadows), predict (micro-batched when asked), log the prediction, count it."""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ferryml.config import Settings
from ferryml.errors import FerryError, NotFound
from ferryml.serving.predlog import new_prediction_id
from ferryml.serving.runtime import Loaded, ServedModel

__all__ = [
    "CURRENT_REQUEST",
    "Answer",
    "BatchOptions",
    "PredictionService",
    "RequestInfo",
    "RouteState",
]


@dataclass
class RequestInfo:
    """The request being answered: its id (``X-Request-Id``) in, and what answered it out,
    for the prediction log and the access log."""

    id: str
    model: str = ""
    version: int | None = None
    route: str = ""  # set when a route failed it, for the failed-request log


# Set by the server around each request; read (and filled in) by ``PredictionService``.
CURRENT_REQUEST: ContextVar[RequestInfo | None] = ContextVar("ferryml_request", default=None)


@dataclass(frozen=True)
class BatchOptions:
    max_rows: int = 64
    max_wait_ms: float = 2.0


# Requests a route answers before its latencies count towards rolling a canary back: the
# first predictions of a model just loaded run cold (caches, lazy imports, a new thread).
WARM_UP = 10


@dataclass(frozen=True)
class Answer:
    model: str
    version: int
    route: str
    ids: list[str]
    predictions: list[Any]
    probabilities: Any = None  # an [n, k] array, when asked for
    loaded: Loaded | None = None  # what answered


class _Logged(NamedTuple):
    """What the prediction log needs of a request predicted in a batch (its batcher's tag)."""

    loaded: Loaded
    ids: list[str]
    started: float  # time.perf_counter() when the request reached the service
    request_id: str | None


@dataclass
class RouteState:
    """A route of the endpoint: a served model, its share of traffic and its record."""

    name: str
    served: ServedModel
    weight: float = 100.0
    role: str = "primary"  # primary | canary | shadow
    batcher: Any = None
    requests: int = 0
    errors: int = 0
    # (time.perf_counter() when answered, seconds taken) of the latest requests, as many
    # as deployments.LATENCIES_KEPT (not imported: the model server loads it only for a
    # deployment)
    latencies: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=2000))

    def latencies_since(self, since: float) -> list[float]:
        """The seconds taken by the requests answered at ``since`` or later, sorted."""
        return sorted(seconds for at, seconds in self.latencies if at >= since)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class PredictionService:
    """One endpoint (a model or a deployment) and its routes."""

    def __init__(
        self,
        settings: Settings,
        endpoint: str,
        routes: list[RouteState],
        *,
        batching: BatchOptions | None = None,
        log: Any = None,
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.routes = routes
        self.batching = batching
        self.log = log
        self.metrics = metrics
        self.on_request: Callable[[RouteState, bool, float], None] | None = None
        # (route, version, error) of a shadow's failure, which no client is answered
        self.on_shadow_failure: Callable[[str, int, FerryError], None] | None = None
        self.stopped = threading.Event()  # set by ``unload``: background work ends
        self._shadow_tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        for route in self.routes:
            if route.served.current is None:
                route.served.load()
            route.served.start_following()
            if self.batching is not None and route.batcher is None:
                route.batcher = self._batcher(route)

    def _batcher(self, route: RouteState) -> Any:
        from ferryml.serving.batching import MicroBatcher

        used = threading.local()  # the model a batch was predicted with: its rows' version

        def predict(frame: pd.DataFrame) -> list[Any]:
            loaded = route.served.current
            assert loaded is not None
            used.loaded = loaded
            return loaded.predict(frame)

        assert self.batching is not None
        on_batch = (
            self.metrics.batch_observer(self.endpoint, route.name)
            if self.metrics is not None
            else None
        )

        def log_batch(frame: pd.DataFrame, outputs: Any, tags: list[_Logged]) -> None:
            self._log_batch(route, used.loaded, frame, outputs, tags)

        return MicroBatcher(
            predict,
            max_batch_rows=self.batching.max_rows,
            max_wait_ms=self.batching.max_wait_ms,
            on_batch=on_batch,
            after=log_batch if self.log is not None else None,
        )

    def _log_batch(
        self,
        route: RouteState,
        loaded: Any,
        frame: pd.DataFrame,
        outputs: Any,
        tags: list[_Logged],
    ) -> None:
        """Log a batch's requests at once, in predict's thread before they are answered:
        one write-ahead record per batch instead of one per request on the event loop,
        under the model version that predicted it, and whole or not at all (a batch that
        fails here is predicted and logged again request by request)."""
        now = time.perf_counter()
        counts = [len(tag.ids) for tag in tags]
        self.log.record_many(
            self.endpoint,
            route.name,
            loaded.name,
            loaded.version,
            [i for tag in tags for i in tag.ids],
            frame,
            outputs,
            np.repeat([(now - tag.started) * 1000 for tag in tags], counts),
            [tag.request_id for tag, n in zip(tags, counts, strict=True) for _ in range(n)],
        )

    async def unload(self) -> None:
        """Stop serving: finish the batches and shadows in flight, stop following aliases
        and let the models go. The prediction log (shared) stays open."""
        self.stopped.set()
        for route in self.routes:
            route.served.stop()
            if route.batcher is not None:
                await route.batcher.close()
                route.batcher = None
        if self._shadow_tasks:
            await asyncio.gather(*self._shadow_tasks, return_exceptions=True)
        for route in self.routes:
            route.served.current = None

    async def close(self) -> None:
        await self.unload()
        if self.log is not None:
            self.log.close()

    @property
    def ready(self) -> bool:
        return all(r.served.current is not None for r in self.routes)

    def versions(self) -> list[int]:
        """The versions a client may name: every loaded route's but the shadows'."""
        loaded = (r.served.current for r in self.routes if r.role != "shadow")
        return sorted({x.version for x in loaded if x is not None})

    def route_of(self, version: int) -> RouteState:
        """The route serving ``version``.

        Raises:
            NotFound: no route (but a shadow) serves it.
        """
        for route in self.routes:
            current = route.served.current
            if route.role != "shadow" and current is not None and current.version == version:
                return route
        served = ", ".join(map(str, self.versions())) or "none yet"
        raise NotFound(
            f"Version {version} of {self.endpoint!r} is not served here; served: {served}."
        )

    def primary(self) -> Loaded:
        for route in self.routes:
            if route.role == "primary" and route.served.current is not None:
                return route.served.current
        raise NotFound(f"Endpoint {self.endpoint!r} has no loaded primary model yet.")

    # -- requests ------------------------------------------------------------------------

    def choose(self, key: str | None) -> RouteState:
        """A route by weight; the same key always lands on the same route."""
        live = [r for r in self.routes if r.role != "shadow" and r.weight > 0]
        if not live:
            raise NotFound(f"Endpoint {self.endpoint!r} has no route with traffic.")
        if len(live) == 1:
            return live[0]
        total = sum(r.weight for r in live)
        if key is None:
            point = random.random() * total
        else:
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 2**64 * total
        for route in live:
            point -= route.weight
            if point < 0:
                return route
        return live[-1]

    async def predict(
        self,
        frame: pd.DataFrame,
        *,
        key: str | None = None,
        endpoint: str = "v1",
        version: int | None = None,
        proba: bool = False,
    ) -> Answer:
        """Predict ``frame`` on a route chosen by weight (or the one serving ``version``),
        with each row's class probabilities too when ``proba``."""
        route = self.choose(key) if version is None else self.route_of(version)
        answer = await self._run(route, frame, endpoint, proba)
        for shadow in (r for r in self.routes if r.role == "shadow"):
            task = asyncio.get_running_loop().create_task(self._shadow(shadow, frame, endpoint))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
        return answer

    async def _shadow(self, route: RouteState, frame: pd.DataFrame, endpoint: str) -> None:
        # A copy of the traffic: logged and counted, never returned.
        try:
            await self._run(route, frame, endpoint)
        except FerryError as e:
            loaded = route.served.current
            if self.on_shadow_failure is not None and loaded is not None:
                self.on_shadow_failure(route.name, loaded.version, e)

    async def _run(
        self, route: RouteState, frame: pd.DataFrame, endpoint: str, proba: bool = False
    ) -> Answer:
        loaded = route.served.current
        if loaded is None:
            raise NotFound(f"Route {route.name!r} has no model loaded yet.")
        started = time.perf_counter()
        ok = False
        probabilities = None
        ids = [new_prediction_id() for _ in range(len(frame))]
        request = CURRENT_REQUEST.get()
        request_id = None if request is None else request.id
        logged = False  # by the batch, in predict's thread (see _log_batch)
        try:
            if proba:  # rare: once per request, beside predict, not through the batcher
                probabilities = loaded.predict_proba(frame)
                predictions = loaded.predict(frame)
            elif route.batcher is not None:
                logged = self.log is not None
                tag = _Logged(loaded, ids, started, request_id) if logged else None
                predictions = await route.batcher.submit(frame, tag)
            else:
                predictions = loaded.predict(frame)
            ok = True
        finally:
            seconds = time.perf_counter() - started
            route.requests += 1
            route.errors += 0 if ok else 1
            if route.requests > WARM_UP:  # a route's first answers pay for warming it up
                route.latencies.append((started + seconds, seconds))
            if self.metrics is not None:
                self.metrics.observe(
                    self.endpoint, route.name, loaded.version, endpoint, ok, seconds, len(frame)
                )
            if self.on_request is not None:
                self.on_request(route, ok, seconds)
            if not ok and route.role != "shadow" and request is not None:  # for the error log
                request.route, request.version = route.name, loaded.version
        if request is not None and route.role != "shadow":
            request.model, request.version = self.endpoint, loaded.version
        if self.log is not None and not logged:
            self.log.record(
                self.endpoint,
                route.name,
                loaded.name,
                loaded.version,
                ids,
                frame,
                predictions,
                seconds * 1000,
                request_id=request_id,
            )
        return Answer(
            loaded.name, loaded.version, route.name, ids, predictions, probabilities, loaded
        )
