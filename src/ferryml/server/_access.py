"""Request ids and the access log: every request carries an ``X-Request-Id`` in and out
(the client's when it sends a sane one, else a new UUID), which the prediction log keeps
beside each prediction, and one JSON line per request goes to the access log."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import select
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import IO, Any

import orjson

from ferryml.serving.service import CURRENT_REQUEST, RequestInfo

__all__ = ["AccessLog", "RequestIds", "request_id_of"]

HEADER = b"x-request-id"
# What a gateway or client sends: UUIDs, hex, base64, ULIDs, trace ids; anything else
# (too long, spaces, quotes, control characters) is replaced, never echoed.
_SANE = re.compile(rb"[A-Za-z0-9._~:/+=@-]{1,128}")


def request_id_of(given: bytes | None) -> str:
    """The id of a request whose ``X-Request-Id`` header is ``given``: itself when sane,
    else a new UUID."""
    if given is not None and _SANE.fullmatch(given):
        return given.decode("ascii")
    return str(uuid.uuid4())


class AccessLog:
    """JSON lines, one a request, written by a background thread so that a slow reader of
    the stream never stalls a request or a graceful stop. A request only appends its line
    to a deque (no lock, no wake-up); the thread writes what gathered every 50 ms, in
    writes of at most PIPE_BUF bytes of whole lines. Past ``max_pending`` lines waiting,
    or when the stream (a pipe nobody reads) stays full for a second, lines are dropped
    and counted (``dropped``). The constructor does no I/O."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        max_pending: int = 10_000,
        interval: float = 0.05,
    ) -> None:
        self.stream = stream
        self.max_pending = max_pending
        self.interval = interval
        self.dropped = 0
        self._lines: deque[bytes] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> AccessLog:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ferryml-access", daemon=True)
            self._thread.start()
        return self

    def write(self, record: dict[str, Any]) -> None:
        if len(self._lines) >= self.max_pending:
            self.dropped += 1
            return
        self._lines.append(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        """Write what waits (as long as the stream takes it), then stop. Idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            fd: int | None = stream.fileno()
            stream.flush()  # what Python buffered goes first
        except (OSError, ValueError, AttributeError):
            fd = None  # no file behind it (a StringIO): its own write
        while not self._stop.wait(self.interval):
            self._drain(stream, fd)
        self._drain(stream, fd)

    def _drain(self, stream: IO[str], fd: int | None) -> None:
        chunk: list[bytes] = []
        size = 0
        while self._lines:
            line = self._lines.popleft()
            if chunk and size + len(line) > select.PIPE_BUF:
                if not self._emit(stream, fd, chunk):
                    return
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._emit(stream, fd, chunk)

    def _emit(self, stream: IO[str], fd: int | None, chunk: list[bytes]) -> bool:
        data = b"".join(chunk)
        if fd is None:
            with contextlib.suppress(OSError, ValueError):
                stream.write(data.decode())
                stream.flush()
            return True
        if _write(fd, data):
            return True
        # Nobody reads the stream: drop what waits rather than wait a second per write.
        waiting = len(self._lines)
        self._lines.clear()
        self.dropped += len(chunk) + waiting
        return False


def _write(fd: int, data: bytes) -> bool:
    """Write ``data`` (whole lines, at most PIPE_BUF bytes but for one longer line) to
    ``fd`` if it takes it within a second: a pipe reports writable once it has room for
    PIPE_BUF bytes, so ``write`` then does not block, and it is atomic: lines of several
    worker processes on one stderr stay whole."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not poller.poll(1000):
            return False
        os.write(fd, data)
    except OSError:
        return False
    return True


class RequestIds:
    """A plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs a fifth of a small
    request): sets the request's id for the service (``CURRENT_REQUEST``), answers with it,
    and writes the access log's line, with ``labels(scope)`` (route template, model)."""

    def __init__(
        self,
        app: Any,
        *,
        labels: Callable[[Any], tuple[str, str]],
        access_log: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.labels = labels
        self.access_log = access_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        info = RequestInfo(request_id_of(given))
        header = (HEADER, info.id.encode("ascii"))
        status = 500  # unless a response starts
        started = time.perf_counter()

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = CURRENT_REQUEST.set(info)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT_REQUEST.reset(token)
            if self.access_log is not None:
                self._log(scope, info, status, time.perf_counter() - started)

    def _log(self, scope: Any, info: RequestInfo, status: int, seconds: float) -> None:
        assert self.access_log is not None
        route, model = self.labels(scope)
        self.access_log.write(
            {
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "request_id": info.id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "model": info.model or model or None,
                "version": info.version,
            }
        )
