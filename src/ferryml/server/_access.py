"""Request ids and the access log: every request carries an ``X-Request-Id`` in and out
(the client's when it sends a sane one, else a new UUID), which the prediction log keeps
beside each prediction, and one JSON line per request goes to the access log."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import re
import select
import sys
import threading
import time
import uuid
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
    the stream never stalls a request or a graceful stop: past ``max_pending`` lines
    waiting, or when the stream (a pipe nobody reads) stays full for a second, lines are
    dropped and counted (``dropped``). The constructor does no I/O."""

    def __init__(self, stream: IO[str] | None = None, *, max_pending: int = 10_000) -> None:
        self.stream = stream
        self.dropped = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(max_pending)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> AccessLog:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ferryml-access", daemon=True)
            self._thread.start()
        return self

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(orjson.dumps(record) + b"\n")
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Write what waits (as long as the stream takes it), then stop. Idempotent."""
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(None)
        except queue.Full:
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
        while not self._stop.is_set():
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                return
            if fd is None:
                with contextlib.suppress(OSError, ValueError):
                    stream.write(line.decode())
                    stream.flush()
            elif not _write(fd, line):
                self.dropped += 1


def _write(fd: int, line: bytes) -> bool:
    """Write ``line`` to ``fd`` if it takes it within a second: a pipe reports writable
    once it has room for PIPE_BUF bytes, and a line is shorter, so ``write`` then does not
    block. A line is one ``write``: lines of several processes on one stderr stay whole."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not poller.poll(1000):
            return False
        os.write(fd, line)
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
