"""uvicorn's HTTP protocol as both servers run it: with TCP_NODELAY on every connection
(uvicorn's multi-worker mode otherwise leaves small keep-alive answers waiting ~40 ms for
the client's delayed acknowledgement). Apart from the model server's module, so the team
server starts without the serving runtime."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["NoDelayHttp"]


class NoDelayHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with Nagle's algorithm off on every connection."""

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a Unix socket has no Nagle to turn off
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
