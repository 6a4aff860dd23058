"""Walking, storing and restoring workspace files, fast: one stat per file from scandir,
no rehash of unchanged files; small files on one thread (thousands of them: one process per
core), large ones on several threads."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import pickle
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ParamSpec, TypeVar

from ferryml.data._hashcache import Entry, HashCache, Stat, stat_key
from ferryml.data._links import DEFAULT_LINKS, Placer
from ferryml.data._manifest import FileEntry
from ferryml.data._pointer import SUFFIX
from ferryml.errors import FerryError, IntegrityError, NotFound
from ferryml.store.artifacts import ArtifactStore

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
_SKIP = {".git", ".ferry", "__pycache__"}
WORKERS = min(8, (os.cpu_count() or 1) * 2)


def bulk(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` without the cyclic garbage collector: the objects made for many files
    form no cycles, yet each collection walked them all (5-8% of the CPU of checking out
    20,000 files). Left off if it was off; threads that overlap leave it on."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return wrapper


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


def pointer_files(root: Path) -> list[Path]:
    """Every pointer file under ``root``, sorted, outside ferryml's and git's folders: one
    scandir per folder, as a project's data folders hold many files."""
    found, stack = [], [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in (".ferry", ".git"):
                        stack.append(Path(entry.path))
                elif entry.name.endswith(SUFFIX) and entry.is_file():
                    found.append(Path(entry.path))
    return sorted(found)


def parallel(
    fn: Callable[[T], R],
    items: list[T],
    sizes: Sequence[int] | None = None,
    *,
    processes: bool = False,
) -> list[R]:
    """``fn`` over ``items``, in order: items of ``sizes`` under ``LARGE`` bytes (all of
    them without ``sizes``) on this thread, the others on a few threads. A small file
    costs a handful of system calls around some Python: threads would fight for the GIL
    (at 2 cores, 4 threads took twice the CPU and wall of one), where hashing and copying
    a large file release it for long. With ``processes`` (``fn`` touches only local files),
    many small items go to forked processes instead, one per core (see ``_in_processes``)."""
    sizes = sizes if sizes is not None else [0] * len(items)
    large = [i for i, size in enumerate(sizes) if size >= LARGE]
    # one large file stays on this thread, and forked children hash none (see _serial)
    threaded = large if len(large) >= 2 else []
    small = [(i, item) for i, item in enumerate(items) if sizes[i] < LARGE]
    results: list[R | None] = [None] * len(items)
    if threaded:  # imported for large files only: 7 ms of every command's start
        from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(WORKERS) if threaded else contextlib.nullcontext() as pool:
        done = pool.map(lambda i: (i, fn(items[i])), threaded) if pool is not None else []
        indexes = [i for i, _ in small]
        for i, result in zip(indexes, _serial(fn, small, processes), strict=True):
            results[i] = result
        for i in [] if threaded else large:
            results[i] = fn(items[i])
        for i, result in done:
            results[i] = result
    return results  # type: ignore[return-value]


LARGE = 1 << 20
# Below this many small items a fork costs more than it saves (~40 us an item, ~2 ms a
# fork); a data folder of thousands of files goes to every core.
FORK_MIN = 512


def _serial(fn: Callable[[T], R], items: list[tuple[int, T]], processes: bool) -> list[R]:
    """``fn`` over the items (index, item) on this thread, or in forked processes."""
    count = _cores() if processes and len(items) >= FORK_MIN else 1
    if count > 1 and _can_fork():
        return _in_processes(fn, [item for _, item in items], count, None)
    return [fn(item) for _, item in items]


def _can_fork() -> bool:
    """Whether work may go to forked processes: on Linux, while this process has one
    thread (a fork copies no other thread, nor frees their locks: the large files'
    threads, blake3's own for a large file, a client's connection pool)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _cores() -> int:
    try:
        return min(4, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return 1


def _in_processes(
    fn: Callable[[T], R], items: list[T], count: int, meanwhile: Callable[[], object] | None
) -> list[R]:
    """``fn`` over ``items`` in forked processes, each taking a run of consecutive items
    (a folder's files stay together); results and errors come back pickled through a pipe.
    This process takes the first run, or runs ``meanwhile`` instead, as the children work,
    and any run no process could be forked for (at a process or file limit). At 2 cores,
    20,000 files of 4 KiB were stored in 0.6-0.9 s instead of 0.9-1.3 s: a file is a few
    system calls and some Python, and processes share no GIL. Children exit at once: no
    finalizer, no flush of buffers they share with this process. Interrupted, this process
    kills and reaps the children it has not collected and closes their pipes."""
    step = -(-len(items) // count)
    runs = [items[start : start + step] for start in range(0, len(items), step)]
    children: dict[int, tuple[int, BinaryIO]] = {}  # run -> (pid, read end), until collected
    results: dict[int, list[R]] = {}
    failure: BaseException | None = None
    try:
        for run in range(0 if meanwhile is not None else 1, len(runs)):
            try:
                children[run] = _fork(fn, runs[run])
            except OSError:  # EAGAIN at a process limit, EMFILE: the rest is done here
                break
        try:
            if meanwhile is not None:
                meanwhile()
            for run in range(len(runs)):
                if run not in children:
                    results[run] = [fn(item) for item in runs[run]]
        except Exception as e:  # noqa: BLE001 - raised below, once the children are collected
            failure = e
        for run, (pid, pipe) in list(children.items()):
            data = pipe.read()
            pipe.close()
            _reap(pid)
            del children[run]
            ok, value = _unpickle(data, pid)
            if ok:
                results[run] = value
            elif failure is None:
                failure = value
    finally:
        for pid, pipe in children.values():  # interrupted (Ctrl-C): stop the rest
            pipe.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
    if failure is not None:
        raise failure
    return [result for run in range(len(runs)) for result in results[run]]


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up by the parent before it forks: a child would import ctypes
    for each fork, and could find no file descriptor left to do it."""
    try:
        import ctypes  # a Python built without _ctypes: best effort, no request

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when ``parent`` dies: a `kill -9` of `ferry data
    add` stops its workers too, instead of leaving them to store their share."""
    prctl = _prctl()
    if prctl is not None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request was made
        os._exit(1)


def _fork(fn: Callable[[T], R], items: list[T]) -> tuple[int, BinaryIO]:
    """A child working on ``items``: its pid and the read end of its result's pipe."""
    _prctl()
    read, write = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            _die_with(parent)
            os.close(read)
            with os.fdopen(write, "wb") as out:
                out.write(_outcome(fn, items))
        finally:
            os._exit(0)
    os.close(write)
    return pid, os.fdopen(read, "rb")


def _reap(pid: int) -> None:
    # with SIGCHLD ignored (as daemons leave it, and children inherit) the kernel reaps them
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _unpickle(data: bytes, pid: int) -> tuple[bool, Any]:
    """A child's (ok, results or error); lost if it ended before writing all of it (killed
    by the OOM killer, or by Ctrl-C inside its write)."""
    try:
        outcome: tuple[bool, Any] = pickle.loads(data)
    except (pickle.UnpicklingError, EOFError, ValueError):
        return False, _lost(pid)
    return outcome


def _outcome(fn: Callable[[T], R], items: list[T]) -> bytes:
    """A child's share, pickled: (True, results) or (False, the error)."""
    try:
        return pickle.dumps((True, [fn(item) for item in items]))
    except BaseException as e:  # noqa: BLE001 - any failure is the parent's to raise
        try:
            data = pickle.dumps((False, e))
            pickle.loads(data)  # some errors pickle but cannot be rebuilt
            return data
        except Exception:  # noqa: BLE001 - then its text crosses over
            return pickle.dumps((False, FerryError(f"{type(e).__name__}: {e}")))


def _lost(pid: int) -> FerryError:
    return FerryError(f"A worker process ({pid}) ended without a result; run the command again.")


def _read_digest(path: str) -> str | None:
    """The file's digest now, or None if it is gone (to confirm a racy cache entry)."""
    from ferryml.store.artifacts import digest_file

    try:
        return digest_file(path).digest
    except (OSError, FerryError):
        return None


Todo = tuple[str, str, int, Stat, int]  # relative path, absolute path, size, stat, links


def scan(
    path: Path, cache: HashCache, meanwhile: Callable[[], object]
) -> tuple[list[FileEntry], list[Todo]]:
    """The file or folder's files: the entries of those the hash cache vouches for, and
    the others, to read. Calls ``meanwhile`` once: beside the walk, which a forked process
    does (opening the metadata store is mostly imports, and took as long as stating
    20,000 files: on two cores they overlap), or after it."""
    folder = path.is_dir()
    here = os.getpid()

    def look(_: object) -> tuple[list[tuple[str, str, int]], list[Todo]]:
        files = list(walk(path)) if folder else [("", str(path), path.stat())]
        try:
            cached = cache.lookup(path)
        finally:
            if os.getpid() != here:  # a forked child's own connection: its parent closed its
                cache.close()
        known, todo = [], []
        for relative, absolute, st in files:
            hit = cached.get(absolute)
            if hit is not None and hit.vouches(st):
                known.append((relative, hit.digest, st.st_size))
            else:  # new, changed or racy: read it
                todo.append((relative, absolute, st.st_size, stat_key(st), st.st_nlink))
        return known, todo

    if folder and _can_fork():  # plain tuples cross the pipe: a fifth of a dataclass's cost
        cache.close()  # the child inherits no SQLite state (its locks); reopened on next use
        known, todo = _in_processes(look, [None], 1, meanwhile)[0]
    else:
        known, todo = look(None)
        meanwhile()
    return [FileEntry(*entry) for entry in known], todo


def store_files(todo: list[Todo], artifacts: ArtifactStore, cache: HashCache) -> list[FileEntry]:
    """Store the files ``scan`` found to read and remember their digests; their entries."""

    def store(item: Todo) -> tuple[str, str, Stat, str, int]:
        relative, absolute, size, key, links = item
        blob = artifacts.ingest_small(absolute, size)
        if links > 1:  # maybe the blob's own file (a hardlink checkout), which was touched
            key = _linked_key(absolute, artifacts.blob_path(blob.digest), key)
        return relative, absolute, key, blob.digest, blob.size

    local = artifacts.blob_path(_ZERO) is not None  # a remote store's client is not forked
    sizes = [size for _, _, size, _, _ in todo]
    stored = parallel(store, todo, sizes, processes=local)
    cache.update((absolute, key, digest) for _, absolute, key, digest, _ in stored)
    return [FileEntry(relative, digest, size) for relative, _, _, digest, size in stored]


def _linked_key(path: str, blob: str | None, key: Stat) -> Stat:
    """The stat of a file that is a hard link of its blob, after storing it touched the
    blob (so that gc keeps it): the same inode holds the same bytes."""
    try:
        now = os.stat(path)
        if blob is not None and now.st_ino == key[3] and os.stat(blob).st_ino == now.st_ino:
            return stat_key(now)
    except OSError:
        pass
    return key


def restore_files(
    root: Path,
    entries: list[FileEntry],
    artifacts: ArtifactStore,
    cache: HashCache,
    links: Sequence[str] = DEFAULT_LINKS,
) -> int:
    """Make the files under ``root`` match ``entries``; return how many were written.

    Files already matching (by the hash cache) are left alone, except read-only hard links
    when hard links are not wanted. Each file is written beside its target and renamed over
    it, with the first of ``links`` that works (see ``_links``); only a hard link shares
    its bytes with the store, and the store keeps its blobs read-only.
    """
    for entry in entries:
        _check_digest(entry.digest)
    hardlinks = "hardlink" in links
    fresh = not os.path.lexists(root)  # nothing there to compare, keep or remove
    cached = {} if fresh else cache.lookup(root)

    def current(entry: FileEntry) -> tuple[FileEntry, bool, bool]:
        """(entry, whether the target is right as it is, whether it exists)."""
        target = f"{root}/{entry.path}" if entry.path else str(root)
        try:
            st = os.stat(target)
        except OSError:
            return entry, False, False
        hit = cached.get(target)
        if hit is None or hit.digest != entry.digest:
            return entry, False, True
        ok = hit.vouches(st)
        if ok is None:
            ok = _read_digest(target) == entry.digest
        if ok and not hardlinks and st.st_nlink > 1 and not st.st_mode & 0o200:
            ok = False  # a read-only hard link of the blob: make it a file of its own
        return entry, ok, True

    if fresh:
        todo = [(entry, False) for entry in entries]
    else:
        checked = [current(entry) for entry in entries]
        todo = [(entry, existed) for entry, ok, existed in checked if not ok]

    made: set[str] = set()
    placer = Placer(links) if artifacts.blob_path(_ZERO) is not None else None

    def restore(item: tuple[FileEntry, bool]) -> tuple[str, Stat, str]:
        entry, existed = item
        target = f"{root}/{entry.path}" if entry.path else str(root)
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        blob = artifacts.blob_path(entry.digest)
        if placer is None or blob is None:
            artifacts.restore_small(entry.digest, Path(target), entry.size)
        else:
            try:
                placer.place(blob, target, entry.size, existed)
            except FileNotFoundError as e:
                if os.path.exists(parent):
                    raise NotFound(
                        f"Blob {entry.digest} ({entry.path or root.name}) is not in the "
                        f"artifact store {artifacts.url}. Fetch it with `ferry data pull`."
                    ) from e
                raise
        return target, stat_key(os.stat(target)), entry.digest

    sizes = [entry.size for entry, _ in todo]
    cache.update(parallel(restore, todo, sizes, processes=placer is not None))
    if not fresh and root.is_dir():
        _remove_stored_extras(root, {e.path for e in entries}, cached)
    return len(todo)


_ZERO = "0" * 64


def _check_digest(digest: str) -> None:
    if len(digest) != 64 or not _HEX.fullmatch(digest):
        raise IntegrityError(
            f"Manifest names a malformed digest {digest[:80]!r}; it is not a ferryml manifest. "
            "Pull it again with `ferry data pull`."
        )


_HEX = re.compile(r"[0-9a-f]{64}")
# What a checkout writes before its rename: left behind by a killed checkout.
_TORN = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")


def _remove_stored_extras(root: Path, wanted: set[str], cached: dict[str, Entry]) -> None:
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
        stored = False
        if hit is not None:
            vouched = hit.vouches(st)
            stored = vouched or (vouched is None and _read_digest(absolute) == hit.digest)
        if stored or (torn is not None and f"{folder}/{torn['name']}".lstrip("/") in wanted):
            os.unlink(absolute)


def hash_files(files: list[tuple[str, str, os.stat_result]], cache: HashCache) -> dict[str, str]:
    """Digest of every file by relative path, hashing only files the cache cannot vouch for."""
    from ferryml.store.artifacts import digest_file

    cached = cache.lookup(Path(os.path.commonpath([a for _, a, _ in files]))) if files else {}
    digests: dict[str, str] = {}
    todo: list[tuple[str, str, os.stat_result, str | None]] = []
    for relative, absolute, st in files:
        hit = cached.get(absolute)
        vouched = None if hit is None else hit.vouches(st)
        if vouched:
            digests[relative] = hit.digest  # type: ignore[union-attr]
        elif vouched is False or hit is None:
            todo.append((relative, absolute, st, None))
        else:
            todo.append((relative, absolute, st, hit.digest))

    def digest(item: tuple[str, str, os.stat_result, str | None]) -> tuple[str, str]:
        return item[0], digest_file(item[1]).digest

    confirmed: list[tuple[str, Stat, str]] = []
    for (relative, absolute, st, was), (_, now) in zip(
        todo,
        parallel(digest, todo, [st.st_size for _, _, st, _ in todo], processes=True),
        strict=True,
    ):
        digests[relative] = now
        if now == was:  # a racy entry, confirmed: trusted from now on
            confirmed.append((absolute, stat_key(st), now))
    cache.update(confirmed)
    return digests
