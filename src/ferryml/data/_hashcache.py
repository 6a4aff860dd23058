"""Digests of workspace files keyed by their stat, so unchanged files are never rehashed.

A file whose size, modification time (ns) and inode match its cached entry has the cached
digest, and that blob is in the artifact store the cache belongs to.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import blake3

Stat = tuple[int, int, int]  # size, mtime_ns, inode


def stat_key(st: os.stat_result) -> Stat:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class HashCache:
    """One SQLite file per artifact store under ``<home>/cache``."""

    def __init__(self, folder: Path, artifacts_url: str) -> None:
        tag = blake3.blake3(artifacts_url.encode()).hexdigest()[:16]
        self._path = folder / f"hashes-{tag}.db"
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, ino INTEGER, digest TEXT) WITHOUT ROWID"
            )
            self._db = db
        return self._db

    def lookup(self, folder: Path) -> dict[str, tuple[Stat, str]]:
        """Cached entries for files at or under ``folder``, by absolute path."""
        prefix = str(folder)
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, ino, digest FROM files "
            "WHERE path = ? OR (path >= ? AND path < ?)",
            (prefix, prefix + os.sep, prefix + chr(ord(os.sep) + 1)),
        )
        return {path: ((size, mtime, ino), digest) for path, size, mtime, ino, digest in rows}

    def update(self, entries: Iterable[tuple[str, Stat, str]]) -> None:
        rows = [(path, *stat, digest) for path, stat, digest in entries]
        if rows:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
