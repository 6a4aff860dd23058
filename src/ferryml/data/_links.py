"""How a checkout puts a stored blob at a workspace path: the first of the store's link
types that works, as DVC's ``cache.type`` chooses.

- ``reflink``: a copy-on-write clone (btrfs, XFS, APFS-like filesystems): instant, and an
  edit in place changes the workspace file alone.
- ``hardlink``: the blob's own file, read-only: instant and no space, but to edit the file
  replace it (editors that save by rename do), or check it out again with ``--link copy``.
- ``copy``: the bytes, always safe.

The default, ``reflink,copy``, is safe for users who edit files in place. A link type the
filesystem refuses (another device, no reflinks) is dropped for the rest of the checkout.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
from collections.abc import Sequence

from ferryml.errors import InvalidArgument

__all__ = ["DEFAULT_LINKS", "LINKS", "Placer", "parse_links"]

LINKS = ("reflink", "hardlink", "copy")
DEFAULT_LINKS = ("reflink", "copy")
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
# What a filesystem answers when it cannot link or clone: try the next type.
_UNSUPPORTED = {
    errno.EXDEV,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EINVAL,
    errno.ENOTTY,
    errno.EPERM,
    errno.ENOSYS,
}


def parse_links(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"hardlink,copy"`` or a list of link types, checked, in order of preference.

    Raises InvalidArgument naming the unknown type and the known ones."""
    items = value.split(",") if isinstance(value, str) else list(value)
    links = tuple(str(item).strip().lower() for item in items if str(item).strip())
    unknown = [link for link in links if link not in LINKS]
    if unknown or not links:
        raise InvalidArgument(
            f"Unknown link type {', '.join(unknown) or repr(value)}: use one or more of "
            f"{', '.join(LINKS)}, e.g. --link hardlink,copy."
        )
    return links


class Placer:
    """Puts blobs of a local store at workspace paths, beside the target and renamed over
    it, so a reader never sees half a file and a killed checkout leaves the old one."""

    def __init__(self, links: Sequence[str]) -> None:
        self.links = list(links)
        # Temp names: random per checkout, then counted (a random draw per file costs a
        # system call); 12 hex digits, as a killed checkout's leftovers are recognised.
        self._prefix = secrets.token_hex(3)
        self._count = itertools.count()
        self._tmpfile = True  # O_TMPFILE works here, until it fails

    def place(self, blob: str, target: str, size: int, existed: bool = False) -> str:
        """Put the blob file ``blob`` at ``target`` (which ``existed`` or not); return the
        link type used."""
        if not existed:
            link = self._place_new(blob, target, size)
            if link is not None:
                return link
        folder, name = os.path.split(target)
        tmp = f"{folder}/.{name}.{self._prefix}{next(self._count) % (1 << 24):06x}.tmp"
        for link in list(self.links):
            if link == "copy" or self._linked(link, blob, tmp):
                break
        else:
            link = "copy"
        try:
            if link == "copy":
                src = os.open(blob, os.O_RDONLY)
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    try:
                        _copy(src, fd, size)
                    finally:
                        os.close(fd)
                finally:
                    os.close(src)
            os.replace(tmp, target)
            if existed and link == "hardlink" and os.path.lexists(tmp):
                os.unlink(tmp)  # target was a link of the blob already: rename did nothing
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return link

    def _place_new(self, blob: str, target: str, size: int) -> str | None:
        """Place the blob at a ``target`` that is not there, whole or not at all, without
        a temp name: a hard link is made at once, other files are written unnamed and then
        linked (O_TMPFILE, on Linux). None if that cannot be done here, or the target
        appeared meanwhile: the caller places it by rename."""
        link = next(iter(self.links), "copy")
        if link == "hardlink":
            if self._linked("hardlink", blob, target, exists_ok=True):
                return "hardlink"
            if os.path.lexists(target):
                return None
            link = "copy" if "hardlink" in self.links else next(iter(self.links), "copy")
        if not self._tmpfile:
            return None
        try:
            fd = os.open(os.path.dirname(target), os.O_WRONLY | os.O_TMPFILE, 0o666)
        except (AttributeError, OSError) as e:  # not Linux, or not this filesystem
            if isinstance(e, OSError) and e.errno not in _UNSUPPORTED | {errno.EISDIR}:
                raise
            self._tmpfile = False
            return None
        try:
            src = os.open(blob, os.O_RDONLY)
            try:
                if link == "reflink" and not _clone(src, fd):
                    self._drop("reflink")
                    link = "retry"
                elif link != "reflink":
                    link = "copy"
                    _copy(src, fd, size)
            finally:
                os.close(src)
            if link == "retry":  # the next link type, for this file and the rest
                return None
            # A dir fd makes CPython call linkat with AT_SYMLINK_FOLLOW (plain link(2)
            # would link the /proc entry itself); the kernel ignores it for this path.
            os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=fd)
        except FileExistsError:
            return None
        except OSError as e:
            if e.errno not in _UNSUPPORTED | {errno.ENOENT}:
                raise
            self._tmpfile = False  # no /proc here
            return None
        finally:
            os.close(fd)
        return link

    def _drop(self, link: str) -> None:
        """Try ``link`` no more: the filesystem refused it (large files' threads may both
        find that out)."""
        with contextlib.suppress(ValueError):
            self.links.remove(link)

    def _linked(self, link: str, blob: str, tmp: str, exists_ok: bool = False) -> bool:
        try:
            if link == "hardlink":
                os.link(blob, tmp)
            else:
                _reflink(blob, tmp)
        except FileExistsError:
            if exists_ok:
                return False
            raise
        except OSError as e:
            if e.errno not in _UNSUPPORTED and e.errno != errno.EMLINK:
                raise
            if e.errno != errno.EMLINK:  # EMLINK: this blob only
                self._drop(link)
            return False
        return True


def _copy(src: int, fd: int, size: int) -> None:
    """Copy the open file ``src`` from its start into the empty open file ``fd``."""
    try:  # in the kernel: no bytes through Python, and no read past the known size
        sent = 0
        while sent < size and (n := os.sendfile(fd, src, sent, size - sent)):
            sent += n
    except (AttributeError, OSError) as e:  # no sendfile between files here
        if isinstance(e, OSError) and e.errno not in _UNSUPPORTED:
            raise
        os.lseek(src, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        while data := os.read(src, 1 << 20):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]


def _clone(src: int, fd: int) -> bool:
    """Make ``fd`` a copy-on-write clone of ``src``; False where the filesystem cannot."""
    try:
        import fcntl

        fcntl.ioctl(fd, _FICLONE, src)
    except ImportError:
        return False
    except OSError as e:
        if e.errno not in _UNSUPPORTED:
            raise
        return False
    return True


def _reflink(blob: str, tmp: str) -> None:
    try:
        import fcntl
    except ImportError as e:  # not a POSIX system
        raise OSError(errno.ENOTSUP, "no reflinks here") from e

    src = os.open(blob, os.O_RDONLY)
    try:
        dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            fcntl.ioctl(dst, _FICLONE, src)
        except BaseException:
            os.close(dst)
            os.unlink(tmp)
            raise
        os.close(dst)
    finally:
        os.close(src)
