"""Write-ahead files that dead processes left: the tracking journal's and the prediction
log's. A live process holds an exclusive ``flock`` on its files and the kernel drops it
when the process dies, so a file that can be locked is a dead process's."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["dead_files"]


def dead_files(
    folder: Path, suffix: str, *, skip: Path | None = None
) -> Iterator[tuple[Path, int]]:
    """Each file of ``folder`` ending in ``suffix`` whose process has died, with a file
    descriptor that holds its lock until the caller resumes the iteration; the caller
    removes a file once it has replayed it."""
    for path in sorted(folder.glob(f"*{suffix}")):
        if path == skip:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            if not path.exists():
                continue  # another process replayed it while we waited
            yield path, fd
        finally:
            os.close(fd)
