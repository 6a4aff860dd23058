"""A real ``ferry server`` process on a free port of 127.0.0.1, with a user and token per
role: what the team server's tests start and talk to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ferryml.store.entities import Role
from ferryml.store.sql import SqlStore
from ferryml.store.sql_users import SqlUserStore

FERRY = str(Path(sys.executable).with_name("ferry"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TeamServer:
    store_url: str
    artifacts_url: str
    home: Path
    port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    tokens: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    preexec: Callable[[], None] | None = None  # run in the server's process before it starts

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env.update(self.extra_env)
        return env

    def start(self) -> TeamServer:
        env = self.env()
        env.update(FERRY_HOME=str(self.home), FERRY_STORE=self.store_url)
        env["FERRY_ARTIFACTS"] = self.artifacts_url
        self.process = subprocess.Popen(
            [FERRY, "server", "--port", str(self.port), *self.args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"ferry server exited {self.process.returncode}: {out}")
            try:
                httpx.get(f"{self.url}/health", timeout=1, verify=False)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("ferry server did not start within 60 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def client_env(self, role: str = "writer") -> dict[str, str]:
        """The environment of a client process that talks to this server as ``role``."""
        env = self.env()
        env.update(FERRY_TRACKING_URI=self.url, FERRY_TOKEN=self.tokens[role])
        return env

    def http(self, role: str | None = "writer") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def running_server(
    store_url: str,
    folder: Path,
    *,
    artifacts: str | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[TeamServer]:
    """A started server over ``store_url`` with a user per role, files under ``folder``
    (and its blobs there unless ``artifacts`` says where); stopped when the generator is
    closed (for fixtures: ``yield from``)."""
    server = TeamServer(
        store_url,
        artifacts or (folder / "server-artifacts").as_uri(),
        folder / "server-home",
        free_port(),
        extra_env=dict(env or {}),
        args=args,
    )
    server.tokens = add_users(store_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def add_users(store_url: str) -> dict[str, str]:
    """A user per role (named after it), and a token for each."""
    users = SqlUserStore(SqlStore(store_url).open())
    try:
        tokens = {}
        for role in Role:
            users.create_user(role.value, role)
            tokens[role.value] = users.create_token(role.value)[1]
        users.create_user("owner", Role.WRITER)
        tokens["owner"] = users.create_token("owner")[1]
        return tokens
    finally:
        users.close()
