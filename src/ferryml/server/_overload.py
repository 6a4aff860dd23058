"""Load shedding: a request that arrives behind too many others, or has already waited
too long for the event loop, is answered 503 with ``Retry-After`` at once, so the requests
the server accepts keep a bounded latency instead of every client timing out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.responses import Response

from ferryml.server._http import ARRIVED, QUEUED

__all__ = ["RETRY_AFTER_S", "Overload"]

RETRY_AFTER_S = 1


class Overload:
    """Answer 503 to a POST (a prediction, feedback) that found ``max_queue`` requests in
    flight in this process when it arrived, or that waited over ``max_wait_ms`` before the
    app got to it. Reads, health and metrics are always answered. A plain ASGI middleware;
    the stamps come from ``NoDelayHttp`` (without them, under another server, it passes
    everything)."""

    def __init__(
        self,
        app: Any,
        *,
        max_queue: int | None,
        max_wait_ms: float | None,
        respond: Callable[[Any, int, str, str], Response],
    ) -> None:
        self.app = app
        self.max_queue = max_queue
        self.max_wait = None if max_wait_ms is None else max_wait_ms / 1000
        self.respond = respond  # (scope, status, message, kind): the app's own error answer
        self.shed = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            why = self._why(scope)
            if why is not None:
                self.shed += 1
                message = f"The server is overloaded ({why}); retry in {RETRY_AFTER_S} s."
                response = self.respond(scope, 503, message, "Overloaded")
                response.headers["Retry-After"] = str(RETRY_AFTER_S)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _why(self, scope: Any) -> str | None:
        queued = scope.get(QUEUED)
        if self.max_queue is not None and queued is not None and queued >= self.max_queue:
            return f"{queued} requests ahead, --max-queue {self.max_queue}"
        arrived = scope.get(ARRIVED)
        if self.max_wait is not None and arrived is not None:
            waited = time.monotonic() - arrived
            if waited > self.max_wait:
                return (
                    f"waited {waited * 1000:.0f} ms, --max-queue-wait-ms {self.max_wait * 1000:g}"
                )
        return None
