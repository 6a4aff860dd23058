"""A TCP proxy on 127.0.0.1 in front of an S3 emulator that injects the object store's
faults: every request answered 503, requests never answered, or a connection cut once a
given number of request bytes went through (a large upload dropped half-way)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

_ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>injected by the test's proxy</Message></Error>"
)


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    mode: str = "pass"  # pass | error | hang | drop
    drop_after: int = 0  # bytes of a request's upload let through before the cut
    drops: int = 0  # connections cut so far
    drop_limit: int | None = None  # cut this many connections, then pass (None: every one)
    _server: socket.socket = field(init=False)
    _open: set[socket.socket] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stopped: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def set(self, mode: str, *, drop_after: int = 0, drop_limit: int | None = None) -> None:
        """Switch the fault; pooled connections are cut so the next request meets it."""
        self.mode, self.drop_after, self.drop_limit, self.drops = mode, drop_after, drop_limit, 0
        with self._lock:
            connections, self._open = list(self._open), set()
        for conn in connections:
            _reset(conn)

    def stop(self) -> None:
        self._stopped.set()
        self.set("pass")
        self._server.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        if mode == "error":
            self._answer_503(client)
        elif mode == "hang":
            self._stopped.wait()  # held open, never answered, until the connection is cut
        else:
            self._forward(client, cut=mode == "drop")

    def _cutting(self) -> bool:
        return self.drop_limit is None or self.drops < self.drop_limit

    def _answer_503(self, client: socket.socket) -> None:
        # One answer a connection, then closed: a connection kept open would go on failing
        # after the fault ends, which no real store does.
        try:
            read = _read_head(client)
            if read is None:
                return
            head, body = read
            if b"100-continue" not in head.lower():
                _discard(client, _content_length(head) - len(body))
            payload = b"" if head.startswith(b"HEAD ") else _ERROR_BODY  # HEAD has no body
            client.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_ERROR_BODY), payload)
            )
        except OSError:
            return
        finally:
            client.close()

    def _forward(self, client: socket.socket, *, cut: bool) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.add(upstream)

        def back() -> None:
            _pump(upstream, client)

        threading.Thread(target=back, daemon=True).start()
        sent = 0
        try:
            while chunk := client.recv(65536):
                if cut and sent + len(chunk) > self.drop_after and self._cutting():
                    self.drops += 1
                    _reset(client)
                    _reset(upstream)
                    return
                sent += len(chunk)
                upstream.sendall(chunk)
        except OSError:
            pass
        _close(client, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    _close(src, dst)


def _read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """A request's head, and the first bytes of its body read with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _discard(conn: socket.socket, remaining: int) -> None:
    conn.settimeout(10)
    while remaining > 0:
        chunk = conn.recv(min(remaining, 65536))
        if not chunk:
            return
        remaining -= len(chunk)


def _reset(conn: socket.socket) -> None:
    # SO_LINGER 0: close with a RST, as a dropped network connection looks to the peer.
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _close(*conns: socket.socket) -> None:
    for conn in conns:
        with contextlib.suppress(OSError):
            conn.close()
