"""Walking, storing and restoring workspace files, fast: one stat per file from scandir,
no rehash of unchanged files, and the I/O spread over threads (it releases the GIL)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ferryml.data._hashcache import HashCache, Stat, stat_key
from ferryml.data._manifest import FileEntry
from ferryml.data._pointer import SUFFIX
from ferryml.store.artifacts import ArtifactStore

T = TypeVar("T")
R = TypeVar("R")
_SKIP = {".git", ".ferry", "__pycache__"}
WORKERS = min(8, (os.cpu_count() or 1) * 4)


def walk(folder: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, stat) of every regular file under ``folder``."""
    stack = [(folder, "")]
    while stack:
        base, rel = stack.pop()
        with os.scandir(base) as entries:
            for entry in entries:
                if entry.name in _SKIP or entry.name.endswith(SUFFIX):
                    continue
                relative = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), relative + "/"))
                elif entry.is_file():
                    yield relative, entry.path, entry.stat()


def parallel(fn: Callable[[T], R], items: list[T], *, large: bool = False) -> list[R]:
    """Threads pay off for large files (hashing and I/O release the GIL); for small ones
    the threads mostly fight over the GIL, so they run one after another."""
    if not large or len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(fn, items, chunksize=4))


def _large(sizes: list[int]) -> bool:
    return bool(sizes) and sum(sizes) / len(sizes) >= (1 << 20)


def store_files(
    files: list[tuple[str, str, os.stat_result]],
    artifacts: ArtifactStore,
    cache: HashCache,
    cached: dict[str, tuple[Stat, str]],
) -> list[FileEntry]:
    """Store what changed since the cache last saw it; return every file's entry."""
    entries: list[FileEntry] = []
    todo: list[tuple[str, str, os.stat_result]] = []
    for relative, absolute, st in files:
        hit = cached.get(absolute)
        if hit is not None and hit[0] == stat_key(st):
            entries.append(FileEntry(relative, hit[1], st.st_size))
        else:
            todo.append((relative, absolute, st))

    def store(item: tuple[str, str, os.stat_result]) -> tuple[str, str, Stat, str, int]:
        relative, absolute, st = item
        blob = artifacts.ingest_small(absolute, st.st_size)
        return relative, absolute, stat_key(st), blob.digest, blob.size

    stored = parallel(store, todo, large=_large([st.st_size for _, _, st in todo]))
    entries += [FileEntry(rel, digest, size) for rel, _, _, digest, size in stored]
    cache.update((absolute, st, digest) for _, absolute, st, digest, _ in stored)
    return entries


def restore_files(
    root: Path, entries: list[FileEntry], artifacts: ArtifactStore, cache: HashCache
) -> int:
    """Make the files under ``root`` match ``entries``; return how many were written.

    Files already matching (by the hash cache) are left alone. Each restored file is a new
    copy written beside its target and renamed over it: editing it never touches the store.
    """
    cached = cache.lookup(root)

    def current(entry: FileEntry) -> bool:
        target = root / entry.path if entry.path else root
        try:
            st = os.stat(target)
        except OSError:
            return False
        hit = cached.get(str(target))
        return hit is not None and hit[0] == stat_key(st) and hit[1] == entry.digest

    todo = [e for e in entries if not current(e)]

    made: set[Path] = set()

    def restore(entry: FileEntry) -> tuple[str, Stat, str]:
        target = root / entry.path if entry.path else root
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        artifacts.restore_small(entry.digest, target, entry.size)
        return str(target), stat_key(os.stat(target)), entry.digest

    cache.update(parallel(restore, todo, large=_large([e.size for e in todo])))
    if root.is_dir():
        _remove_stored_extras(root, {e.path for e in entries}, cached)
    return len(todo)


# What ArtifactStore.restore_small writes before its rename: left behind by a killed checkout.
_TORN = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")


def _remove_stored_extras(
    root: Path, wanted: set[str], cached: dict[str, tuple[Stat, str]]
) -> None:
    """Remove files the version lacks, but only those whose content is in the store (the
    cache vouches for them): a file the user made and never added is never deleted. Also
    remove the temp files a killed checkout left beside files of the version, so that they
    never become data."""
    for relative, absolute, st in walk(root):
        if relative in wanted:
            continue
        hit = cached.get(absolute)
        folder, _, name = relative.rpartition("/")
        torn = _TORN.fullmatch(name)
        if (hit is not None and hit[0] == stat_key(st)) or (
            torn is not None and f"{folder}/{torn['name']}".lstrip("/") in wanted
        ):
            os.unlink(absolute)


def hash_files(files: list[tuple[str, str, os.stat_result]], cache: HashCache) -> dict[str, str]:
    """Digest of every file by relative path, hashing only files the cache cannot vouch for."""
    from ferryml.store.artifacts import digest_file

    cached = cache.lookup(Path(os.path.commonpath([a for _, a, _ in files]))) if files else {}
    digests: dict[str, str] = {}
    todo = []
    for relative, absolute, st in files:
        hit = cached.get(absolute)
        if hit is not None and hit[0] == stat_key(st):
            digests[relative] = hit[1]
        else:
            todo.append((relative, absolute))
    for relative, digest in parallel(lambda i: (i[0], digest_file(i[1]).digest), todo, large=True):
        digests[relative] = digest
    return digests
