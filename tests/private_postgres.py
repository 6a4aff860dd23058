"""A PostgreSQL cluster of the tests' own, in a temporary folder (``initdb``, ``pg_ctl``), so
a test can stop, crash and restart the database itself without touching the shared server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


def _version(initdb: str) -> int:
    name = Path(initdb).parent.parent.name
    return int(name) if name.isdigit() else 0


def _binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest under /usr/lib/postgresql,
    or wherever ``initdb`` is on the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def unavailable_reason() -> str | None:
    """Why a private cluster cannot be started here, or None when it can."""
    if _binaries() is None:
        return "PostgreSQL's initdb and pg_ctl are not installed (/usr/lib/postgresql/*/bin)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "initdb refuses to run as root and there is no 'postgres' user to run it as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """One cluster in ``folder``, listening on 127.0.0.1 only, trust auth, no fsync (the
    tests crash the server, not the machine)."""

    def __init__(self) -> None:
        bin_dir = _binaries()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason())
        self._bin = bin_dir
        # initdb refuses root; pytest's temp folders are private to root, so the cluster
        # gets a folder of its own that its user owns.
        self._user: dict[str, Any] = {}
        self.folder = Path(tempfile.mkdtemp(prefix="ferry-pg-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.data = self.folder / "data"
        self.port = _free_port()
        self._pg_ctl("initdb", "-o", "-A trust -U postgres -E UTF8 --no-sync")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c shared_buffers=16MB -c max_connections=60"
        )
        self._pg_ctl(
            "start", "-w", "-t", "60", "-l", str(self.folder / "server.log"), "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: a crash (no checkpoint, the next start
        recovers from the WAL)."""
        self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def create_database(self, ddl: str | None = None) -> str:
        """A new database in the cluster, built by ``ddl`` when given (the suite's
        ``postgres_ddl``, faster than the migrations); returns its URL."""
        name = f"ferry_{uuid.uuid4().hex[:10]}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        if ddl is not None:
            engine = create_engine(self.url(name), isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql(ddl)
            finally:
                engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._user,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[0]} failed: {result.stdout}{result.stderr}")
        return result
