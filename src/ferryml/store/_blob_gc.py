"""Garbage collection of a local artifact store's blobs (``ferry gc``): the part of
``ArtifactStore`` that lists blobs by age and deletes the unreferenced ones.

A writer that finds its content stored already "reuses" the blob: it sets the blob's mtime
to now before it records a reference. ``ferry gc`` deletes a blob only if it was older
than the grace period when listed, is referenced by nothing at the end of the scan, and is
still old once moved aside: a writer's touch lands either before the move (the blob is put
back) or after it (the touch fails and the writer stores the content again).
"""

from __future__ import annotations

import os
import secrets
from contextlib import AbstractContextManager
from pathlib import Path

from ferryml.errors import InvalidArgument
from ferryml.store._blobfiles import _check_digest

__all__ = ["BlobCollection"]


class BlobCollection:
    """Mixed into ``ArtifactStore``, whose root, URL and error mapping it uses."""

    _local: Path | None
    _url: str

    def _io(self, what: str, digest: str | None = None) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _path(self, digest: str) -> Path:
        raise NotImplementedError

    def list_stale_blobs(self, older_than: float) -> dict[str, int]:
        """Digest and size of every blob last written or reused before ``older_than``
        (seconds since the epoch). A local store only.

        Raises InvalidArgument for a remote store.
        """
        root = self._local_root("Listing blobs by age")
        found: dict[str, int] = {}
        with self._io("Listing blobs"):
            for fan in os.scandir(root):
                if not (fan.is_dir() and len(fan.name) == 2):
                    continue
                for entry in os.scandir(fan.path):
                    if len(entry.name) != 62 or entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    if st.st_mtime < older_than:
                        found[fan.name + entry.name] = st.st_size
        return found

    def delete_blob(self, digest: str, *, unless_used_after: float) -> bool:
        """Delete a blob unless a writer reused it after ``unless_used_after``; returns
        whether it was deleted. Only for blobs nothing references."""
        _check_digest(digest)
        self._local_root("Deleting blobs")
        path = self._path(digest)
        aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.gc")
        with self._io(f"Deleting blob {digest}"):
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                return False
            if aside.stat().st_mtime >= unless_used_after:
                os.replace(aside, path)  # reused meanwhile; a rewrite holds the same bytes
                return False
            aside.unlink()
        return True

    def delete_leftovers(self, older_than: float) -> int:
        """Put back blobs a crashed ``gc`` left aside, and delete the temporary files of
        crashed writers older than ``older_than``; returns how many files were touched."""
        root = self._local_root("Cleaning blobs")
        count = 0
        with self._io("Cleaning blobs"):
            for fan in os.scandir(root):
                if not fan.is_dir():
                    continue
                for entry in os.scandir(fan.path):
                    name = entry.name
                    if name.startswith(".") and name.endswith(".gc"):
                        blob = Path(fan.path) / name[1:].rsplit(".", 2)[0]
                        if blob.exists():
                            os.unlink(entry.path)
                        else:
                            os.replace(entry.path, blob)
                        count += 1
                    elif name.startswith(".") and name.endswith(".tmp"):
                        try:
                            if entry.stat().st_mtime < older_than:
                                os.unlink(entry.path)
                                count += 1
                        except FileNotFoundError:
                            continue
        return count

    def _local_root(self, what: str) -> Path:
        if self._local is None:
            raise InvalidArgument(
                f"{what} needs a local artifact store; {self._url!r} is remote. Use the "
                "bucket's lifecycle rules there."
            )
        return self._local / "blobs"
