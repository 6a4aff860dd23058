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

import contextlib
import marshal
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
        if type(self.digest) is not str or type(self.hashed_ns) is not int:
            return False  # a damaged entry: the file is read again
        mtime = st.st_mtime_ns
        if mtime % _SECOND == 0:
            mtime += _COARSE_TICK - 1
        return True if mtime < self.hashed_ns else None


class HashCache:
    """One SQLite file per artifact store under ``<home>/cache``: a row per folder, holding
    its files' entries marshalled together (a row per file took 0.2 s to write and 0.1 s to
    read for 20,000 files, most of a checkout's time that was not file work)."""

    def __init__(self, folder: Path, artifacts_url: str) -> None:
        self._tag = tag = blake3.blake3(artifacts_url.encode()).hexdigest()[:16]
        self._path = folder / f"hashes-v3-{tag}.db"
        self._clock = folder / f"hashes-v3-{tag}.clock"
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            if not self._path.exists():  # the last version's cache, a row per file: unused
                for old in self._path.parent.glob(f"hashes-v2-{self._tag}.*"):
                    old.unlink(missing_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:
                self._set_aside(e)
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # files: marshal of {name: ((size, mtime_ns, ctime_ns, inode), digest, hashed_ns)}
            db.execute(
                "CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY, files BLOB) "
                "WITHOUT ROWID"
            )
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, e: sqlite3.DatabaseError) -> None:
        """Move a damaged cache file aside (re-raise any other error): it only saves reading
        files, so the command goes on with an empty one and reads its files again."""
        code = getattr(e, "sqlite_errorcode", 0)  # the module's own errors carry none
        if code & 0xFF not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise e  # locked, disk full, I/O error: the file may be sound
        import logging  # only here: most commands never log

        self.close()
        aside = self._path.with_name(self._path.name + ".damaged")
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._path, aside)
        for journal in ("-wal", "-shm"):  # they belong to the damaged file
            self._path.with_name(self._path.name + journal).unlink(missing_ok=True)
        logging.getLogger(__name__).warning(
            "The hash cache %s is damaged (%s): moved it to %s and started an empty one; "
            "files are read again.",
            self._path,
            e,
            aside.name,
        )

    def lookup(self, folder: Path) -> dict[str, Entry]:
        """Cached entries for files at or under ``folder``, by absolute path."""
        prefix = str(folder)
        parent, _, name = prefix.rpartition(os.sep)
        query = "SELECT path, files FROM folders WHERE path = ? OR path = ? OR " + (
            "(path >= ? AND path < ?)"
        )
        bounds = (parent or os.sep, prefix, prefix + os.sep, prefix + chr(ord(os.sep) + 1))
        try:
            rows = self._conn().execute(query, bounds).fetchall()
        except sqlite3.DatabaseError as e:
            self._set_aside(e)
            return {}
        found: dict[str, Entry] = {}
        for path, blob in rows:
            files = _files_of(blob)
            if path == (parent or os.sep) and path != prefix:  # ``folder`` may be a file
                files = {name: files[name]} if name in files else {}
            base = path.rstrip(os.sep)
            try:
                found.update({f"{base}{os.sep}{n}": Entry._make(e) for n, e in files.items()})
            except TypeError:  # a damaged row: its files are read again (checked only then)
                good = _well_formed(files)
                found.update({f"{base}{os.sep}{n}": Entry._make(e) for n, e in good.items()})
        return found

    def update(self, entries: Iterable[tuple[str, Stat, str]]) -> None:
        """Record (absolute path, stat, digest) of files whose content, read before this
        call, had that digest."""
        found = list(entries)
        if not found:
            return
        now = self._now()
        folders: dict[str, dict[str, tuple[Stat, str, int]]] = {}
        for path, stat, digest in found:
            parent, _, name = path.rpartition(os.sep)
            folders.setdefault(parent or os.sep, {})[name] = (stat, digest, now)
        try:
            _write(self._conn(), folders)
        except sqlite3.DatabaseError as e:
            self._set_aside(e)
            _write(self._conn(), folders)

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


def _write(db: sqlite3.Connection, folders: dict[str, dict[str, tuple[Stat, str, int]]]) -> None:
    db.execute("BEGIN IMMEDIATE")  # read and written under the lock: no update is lost
    try:
        for path, files in folders.items():
            row = db.execute("SELECT files FROM folders WHERE path = ?", (path,)).fetchone()
            if row is not None:
                files = {**_well_formed(_files_of(row[0])), **files}
            db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (path, marshal.dumps(files)))
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def _files_of(blob: bytes) -> dict[str, tuple[Stat, str, int]]:
    """A folder's entries; none from a row marshal cannot load (its files are read again).
    marshal, as this file is the machine's own state: 20,000 entries load in about 20 ms
    (checking each one's shape would add half of that: ``Entry`` checks what it uses)."""
    try:
        files = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return {}
    return files if isinstance(files, dict) else {}


def _well_formed(files: dict[str, tuple[Stat, str, int]]) -> dict[str, tuple[Stat, str, int]]:
    """The entries of a damaged row that have the shape of
    ``{name: ((size, mtime_ns, ctime_ns, inode), digest, hashed_ns)}``."""
    return dict(filter(_is_entry, files.items()))


def _is_entry(item: tuple[object, object]) -> bool:
    name, entry = item
    if type(name) is not str or type(entry) is not tuple or len(entry) != 3:
        return False
    stat, digest, hashed_ns = entry
    if type(stat) is not tuple or len(stat) != 4 or type(digest) is not str:
        return False
    size, mtime, ctime, inode = stat
    return type(hashed_ns) is type(size) is type(mtime) is type(ctime) is type(inode) is int
