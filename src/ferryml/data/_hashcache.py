"""Digests of workspace files keyed by their stat, so unchanged files are never rehashed.

A file whose size, modification and change times (ns) and inode match its cached entry
has the cached digest, and that blob is in the artifact store the cache belongs to.

Unless the entry is *racy* (as git calls it): a file modified in the same timestamp tick
as it was hashed could change again in that tick and keep its size and times. So each
batch of entries is stamped with the filesystem's clock after the files were read (the
mtime of a file touched then, as git compares with its index file's), and an entry is
trusted only if the file's mtime is older than that stamp, by two seconds if the mtime is
a whole second (filesystems that keep whole or even seconds). A racy entry is trusted
only after its content is hashed again.
"""

from __future__ import annotations

import copy
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import blake3

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
_SECOND = 1_000_000_000
_COARSE_TICK = 2 * _SECOND  # FAT keeps even seconds


def stat_key(st: os.stat_result) -> Stat:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Entry(NamedTuple):
    stat: Stat
    digest: str
    hashed_ns: int  # the filesystem's clock after the content was read

    def vouches(self, st: os.stat_result) -> bool | None:
        """True if ``st`` is the file this entry hashed, False if it is not, None if it may
        be (same stat, but racy): hash it again to know."""
        if self.stat != stat_key(st):
            return False
        mtime = st.st_mtime_ns
        if mtime % _SECOND == 0:
            mtime += _COARSE_TICK - 1
        return True if mtime < self.hashed_ns else None


class HashCache:
    """One SQLite file per artifact store under ``<home>/cache``."""

    def __init__(self, folder: Path, artifacts_url: str) -> None:
        tag = blake3.blake3(artifacts_url.encode()).hexdigest()[:16]
        self._path = folder / f"hashes-v2-{tag}.db"
        self._clock = folder / f"hashes-v2-{tag}.clock"
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, digest TEXT, "
                "hashed_ns INTEGER) WITHOUT ROWID"
            )
            self._db = db
        return self._db

    def unopened(self) -> HashCache:
        """This cache over a connection of its own, opened on first use: a forked process
        must not use one its parent opened (SQLite's rule)."""
        twin = copy.copy(self)
        twin._db = None
        return twin

    def lookup(self, folder: Path) -> dict[str, Entry]:
        """Cached entries for files at or under ``folder``, by absolute path."""
        prefix = str(folder)
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, ctime_ns, ino, digest, hashed_ns FROM files "
            "WHERE path = ? OR (path >= ? AND path < ?)",
            (prefix, prefix + os.sep, prefix + chr(ord(os.sep) + 1)),
        )
        return {
            path: Entry((size, mtime, ctime, ino), digest, hashed)
            for path, size, mtime, ctime, ino, digest, hashed in rows
        }

    def update(self, entries: Iterable[tuple[str, Stat, str]]) -> None:
        """Record (absolute path, stat, digest) of files whose content, read before this
        call, had that digest."""
        found = list(entries)
        if found:
            now = self._now()
            rows = [(path, *stat, digest, now) for path, stat, digest in found]
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def _now(self) -> int:
        """The filesystem's clock: the mtime of a file touched now."""
        try:
            os.utime(self._clock)
        except FileNotFoundError:
            self._clock.parent.mkdir(parents=True, exist_ok=True)
            self._clock.touch()
        return os.stat(self._clock).st_mtime_ns

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
