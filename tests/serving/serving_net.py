"""A free port on 127.0.0.1 for the serving tests (imported by name: a module called
``conftest`` would be whichever conftest was imported first)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
