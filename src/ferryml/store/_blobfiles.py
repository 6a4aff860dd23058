"""Blobs as files: digests, atomic writes beside their target, and the checks the artifact
store and its HTTP client share."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from ferryml.errors import InvalidArgument, NotFound

_CHUNK = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
# s3fs moves a file in blocks of 50 MiB, sending ten at once: a team server over S3 peaked
# at 677 MB. Uploads in boto3's own 8 MiB parts, four at once; reads 16 MiB ahead (8 MiB
# read a third as fast through moto's server, 32 MiB added 40 MB for 2.6x the speed).
_READ_BLOCK = 16 << 20
_PUT_OPTIONS = dict.fromkeys(("s3", "s3a"), {"chunksize": 8 << 20, "max_concurrency": 4})


@dataclass(frozen=True)
class Blob:
    """Content as the store knows it: lowercase hex blake3 digest (64 chars) and size."""

    digest: str
    size: int


def digest_bytes(data: bytes) -> Blob:
    """Return the blob (blake3 digest and size) of ``data``."""
    return Blob(blake3.blake3(data).hexdigest(), len(data))


def digest_file(path: str | os.PathLike[str]) -> Blob:
    """Return the blob of the file at ``path``, read in 1 MiB chunks.

    Raises NotFound if there is no such file, InvalidArgument if it is a folder.
    """
    with _open_source(path) as src:
        return _copy(src, None)


def _reuse_path(path: str, size: int) -> bool:
    """Whether the blob file at ``path`` holds ``size`` bytes; if so its mtime becomes now
    (see ``ArtifactStore._reuse``)."""
    try:
        if os.stat(path).st_size != size:
            return False
        os.utime(path)
    except FileNotFoundError:
        return False  # absent, or moved aside by gc: store it again
    except PermissionError:
        # Another user's blob: store it again (a fresh file, ours), unless the store is
        # read-only to us, where no gc of ours can run either.
        return not os.access(os.path.dirname(path), os.W_OK)
    return True


def _write_new(target: str, data: bytes, mode: int, fsync: bool) -> None:
    """Write ``data`` to a temp file beside ``target`` and rename it over ``target``."""
    folder, name = os.path.split(target)
    tmp = f"{folder}/.{name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            _write_all(fd, data, fsync)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:  # a full disk included: no half-written file is left behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_all(fd: int, data: bytes, fsync: bool) -> None:
    """Write ``data`` whole to ``fd`` (a write may take less than asked), synced if asked."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if fsync:
        os.fsync(fd)


def _store_new(target: str, data: bytes, fsync: bool) -> None:
    """Store ``data`` as the read-only blob file ``target`` unless it holds them already
    (see ``_reuse_path``). Where Linux offers it, the bytes go to an unnamed file that is
    then linked at ``target`` whole (O_TMPFILE): one change to the folder instead of a
    temp name and a rename, and no stat first, as the link fails if the blob exists."""
    folder = os.path.dirname(target)
    try:
        try:
            fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE, 0o444)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE, 0o444)
    except (AttributeError, OSError) as e:  # no O_TMPFILE on this system or filesystem
        if isinstance(e, OSError) and e.errno not in _NO_TMPFILE:
            raise
        if not _reuse_path(target, len(data)):
            _write_new(target, data, 0o444, fsync)
        return
    try:
        _write_all(fd, data, fsync)
        # A dir fd makes CPython call linkat with AT_SYMLINK_FOLLOW (plain link(2) would
        # link the /proc entry itself); with an absolute path the kernel ignores it.
        os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=fd)
    except FileExistsError:
        if not _reuse_path(target, len(data)):
            _write_new(target, data, 0o444, fsync)  # a damaged blob is replaced
    except OSError as e:  # no /proc, or no links on this filesystem
        if e.errno not in _NO_TMPFILE:
            raise
        _write_new(target, data, 0o444, fsync)
    finally:
        os.close(fd)


_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV, errno.EPERM}


def _put(fs: Any, protocol: str, path: str | os.PathLike[str], key: str) -> None:
    """Upload the file at ``path`` to ``key`` of the fsspec filesystem ``fs``."""
    fs.put_file(os.fspath(path), key, **_PUT_OPTIONS.get(protocol, {}))


def _check_digest(digest: str) -> None:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"Malformed digest {digest!r}: expected 64 lowercase hex characters.")


def _open_source(path: str | os.PathLike[str]) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except FileNotFoundError as e:
        raise NotFound(f"File {os.fspath(path)!r} not found. Check the path.") from e
    except IsADirectoryError as e:
        raise InvalidArgument(f"{os.fspath(path)!r} is a folder; pass a file.") from e


def _copy(src: io.BufferedIOBase, dst: io.BufferedIOBase | None) -> Blob:
    hasher, size, buf = blake3.blake3(), 0, bytearray(_CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        hasher.update(view[:n])
        if dst is not None:
            dst.write(view[:n])
        size += n
    return Blob(hasher.hexdigest(), size)


def _copy_file(src: io.BufferedIOBase, out: io.BufferedWriter, written: Path) -> Blob:
    """``_copy`` of a large file into the new file ``out`` at ``written``: the kernel
    copies it (copy_file_range: no bytes through Python, a clone where the filesystem
    can), then the copy is hashed on every core. Plain ``_copy`` where that cannot be."""
    try:
        fd_in, fd_out = src.fileno(), out.fileno()
        start = src.tell()
    except (AttributeError, OSError):  # io.UnsupportedOperation included: not a file
        return _copy(src, out)
    size = 0
    try:
        while n := os.copy_file_range(fd_in, fd_out, 1 << 30, start + size, size):
            size += n
    except (AttributeError, OSError) as e:  # older systems, or across filesystems
        if size or (isinstance(e, OSError) and e.errno not in _NO_KERNEL_COPY):
            raise
        return _copy(src, out)
    if size == 0 and os.fstat(fd_in).st_size > 0:  # a filesystem that copies nothing
        return _copy(src, out)
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(written)
    return Blob(hasher.hexdigest(), size)


_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


def _create_temp(beside: Path, mode: int) -> tuple[Path, io.BufferedWriter]:
    # Same folder as the target, so os.replace is a rename; O_EXCL and a random name, so
    # concurrent writers and the leftovers of crashed ones never collide.
    tmp = beside.with_name(f".{beside.name}.{secrets.token_hex(8)}.tmp")
    return tmp, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb")


def _fsync_dir(path: Path, durable: bool = True) -> None:
    # A rename or a new folder is durable only once the folder holding its entry is.
    if not durable:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
