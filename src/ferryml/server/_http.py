"""uvicorn's HTTP protocol as both servers run it: with TCP_NODELAY on every connection
(uvicorn's multi-worker mode otherwise leaves small keep-alive answers waiting ~40 ms for
the client's delayed acknowledgement), each request stamped with when it arrived and how
many were ahead of it (for ``_overload``), and a shutdown that fails no client. Apart from
the model server's module, so the team server starts without the serving runtime."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ARRIVED", "DRAIN_SECONDS", "QUEUED", "NoDelayHttp"]

ARRIVED = "ferryml.arrived"  # scope key: time.monotonic() when the request's head was read
QUEUED = "ferryml.queued"  # scope key: requests of this process in flight when it arrived
# On shutdown an idle keep-alive connection is kept this long, so a request the client is
# sending right then is answered (with Connection: close) instead of meeting a reset.
DRAIN_SECONDS = 1.0


class NoDelayHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with Nagle's algorithm off on every connection."""

    _draining = False

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a Unix socket has no Nagle to turn off
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        cycle.scope[ARRIVED] = time.monotonic()
        cycle.scope[QUEUED] = len(self.tasks)
        if self._draining:
            cycle.keep_alive = False  # answered, then closed: the client reconnects elsewhere
        super()._start_asgi_task(cycle, app)

    def shutdown(self) -> None:
        """Stop this connection gracefully: a request in flight is answered with
        ``Connection: close``; an idle one is closed after ``DRAIN_SECONDS`` (uvicorn closes
        it at once, and a request crossing that close fails at the client)."""
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(DRAIN_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
