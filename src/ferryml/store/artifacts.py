"""Content-addressed artifact store: blobs named by their blake3 digest, written
atomically, stored once, on a local folder or any fsspec URL.

Layout under the root: ``blobs/<digest[:2]>/<digest[2:]>``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from ferryml.errors import FerryError, IntegrityError, InvalidArgument, NotFound, StoreUnavailable

__all__ = ["ArtifactStore", "Blob", "digest_bytes", "digest_file"]

_CHUNK = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
_WHAT_TO_DO = "Set FERRY_ARTIFACTS to a writable location."


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


class ArtifactStore:
    """Blobs addressed by digest under ``url``: ``file:///abs/path`` (or a plain absolute
    path) or any fsspec URL such as ``s3://bucket/prefix``.

    The constructor does no I/O; call ``open()`` to create and check the store.

    >>> store = ArtifactStore("/tmp/ferry-artifacts").open()
    >>> blob = store.put_bytes(b"weights")
    >>> store.get_bytes(blob.digest)
    b'weights'
    """

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self._url = url
        self._options = dict(storage_options or {})
        # A cached listing would make exists() miss blobs written by other clients.
        self._options.setdefault("use_listings_cache", False)
        self._fs: Any = None
        protocol, sep, rest = url.partition("://")
        if not sep:
            protocol, rest = "file", url
        if protocol == "file":
            if not os.path.isabs(rest):
                raise InvalidArgument(
                    f"Artifact store URL {url!r} is neither an absolute path nor a URL. "
                    "Use file:///abs/path, /abs/path or s3://bucket/prefix."
                )
            self._local: Path | None = Path(rest)
        elif rest.strip("/"):
            self._local = None
        else:
            raise InvalidArgument(f"Artifact store URL {url!r} names no bucket or folder.")
        self._protocol = protocol
        self._root = rest.rstrip("/")

    @property
    def url(self) -> str:
        """The URL the store was created with."""
        return self._url

    def open(self) -> ArtifactStore:
        """Create the root folder (file) or reach the bucket (remote); return self.

        Raises StoreUnavailable, naming the URL, if the store cannot be created or reached.
        """
        if self._local is not None:
            blobs = self._local / "blobs"
            try:
                blobs.mkdir(parents=True, exist_ok=True)
                # Only a real write proves writability: permission bits do not stop root,
                # and a read-only mount passes every access() check but this one.
                probe, out = _create_temp(blobs / "probe", 0o666)
                out.close()
                probe.unlink()
            except OSError as e:
                raise StoreUnavailable(
                    f"Artifact store {self._url!r} is not writable: creating {blobs} "
                    f"failed ({e.strerror or e}). {_WHAT_TO_DO}"
                ) from e
            return self
        bucket = self._root.split("/")[0]
        fs = self._filesystem()
        try:
            fs.info(bucket)
        # Connection, credential and HTTP errors of the many fsspec backends share no base.
        except Exception as e:
            reason = "it does not exist" if isinstance(e, FileNotFoundError) else repr(e)
            raise StoreUnavailable(
                f"Artifact store {self._url!r} is unreachable: bucket {bucket!r} failed a "
                f"check ({reason}). Check the bucket, endpoint and credentials, or "
                "set FERRY_ARTIFACTS to another location."
            ) from e
        return self

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store the file at ``path`` (once per content) and return its blob.

        Raises NotFound if the file does not exist, StoreUnavailable if the store fails.
        """
        with _open_source(path) as src:
            # Hash before writing: content already stored costs one read and no write.
            blob = _copy(src, None)
            if self._stored_size(blob.digest) == blob.size:
                return blob
            if self._local is None:
                with self._io(f"Uploading {path}"):
                    self._filesystem().put_file(os.fspath(path), self._key(blob.digest))
                return blob
            src.seek(0)
            return self._write_local(blob.digest, src)

    def put_bytes(self, data: bytes) -> Blob:
        """Store ``data`` (once per content) and return its blob."""
        blob = digest_bytes(data)
        if self._stored_size(blob.digest) == blob.size:
            return blob
        if self._local is None:
            with self._io("Uploading bytes"):
                self._filesystem().pipe_file(self._key(blob.digest), data)
            return blob
        return self._write_local(blob.digest, io.BytesIO(data))

    def exists(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        return self._stored_size(digest) is not None

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """Return the blob's content, checked against its digest when ``verify``.

        Raises NotFound if absent, IntegrityError if the content does not match.
        """
        with self._io(f"Reading blob {digest}", digest), self._open_blob(digest) as src:
            data: bytes = src.read()
        if verify:
            self._check(digest, digest_bytes(data))
        return data

    def get_file(
        self, digest: str, dest: str | os.PathLike[str], *, verify: bool = True
    ) -> Path:
        """Write the blob to ``dest`` atomically (creating folders) and return its path.

        Raises NotFound if absent, IntegrityError if the content does not match; either
        way ``dest`` is left untouched.
        """
        _check_digest(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, out = _create_temp(dest, 0o666)
        try:
            with out, self._io(f"Reading blob {digest}", digest), self._open_blob(digest) as src:
                blob = _copy(src, out)
            if verify:
                self._check(digest, blob)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def local_path(self, digest: str) -> Path | None:
        """The blob's path (present or not) in a file:// store, else None."""
        _check_digest(digest)
        if self._local is None:
            return None
        return self._local / "blobs" / digest[:2] / digest[2:]

    def _key(self, digest: str) -> str:
        return f"{self._root}/blobs/{digest[:2]}/{digest[2:]}"

    def _filesystem(self) -> Any:
        if self._fs is None:
            try:
                import fsspec

                self._fs = fsspec.filesystem(self._protocol, **self._options)
            except ImportError as e:
                raise StoreUnavailable(
                    f"Artifact store {self._url!r} needs a package that is missing ({e}). "
                    "For s3:// install it with: pip install 'ferryml[s3]'."
                ) from e
            except (ValueError, TypeError) as e:  # unknown protocol, bad storage_options
                raise InvalidArgument(f"Artifact store {self._url!r} cannot be set up: {e}") from e
        return self._fs

    @contextmanager
    def _io(self, what: str, digest: str | None = None) -> Iterator[None]:
        """Map storage errors to ferryml's: a missing blob to NotFound, the rest to
        StoreUnavailable (any exception for remote stores, whose clients raise their own)."""
        failure = OSError if self._local is not None else Exception
        try:
            yield
        except FerryError:
            raise
        except FileNotFoundError as e:
            if digest is None:
                raise StoreUnavailable(f"{what} to {self._url!r} failed: {e}.") from e
            raise NotFound(f"Blob {digest} not found in artifact store {self._url!r}.") from e
        except failure as e:
            raise StoreUnavailable(
                f"{what} in artifact store {self._url!r} failed: {e}. "
                "Check the store is reachable, writable and has free space."
            ) from e

    def _open_blob(self, digest: str) -> Any:
        _check_digest(digest)
        if self._local is not None:
            return open(self._local / "blobs" / digest[:2] / digest[2:], "rb")
        return self._filesystem().open(self._key(digest), "rb")

    def _stored_size(self, digest: str) -> int | None:
        _check_digest(digest)
        try:
            if self._local is not None:
                return (self._local / "blobs" / digest[:2] / digest[2:]).stat().st_size
            with self._io(f"Checking blob {digest}", digest):
                return int(self._filesystem().info(self._key(digest))["size"])
        except (FileNotFoundError, NotADirectoryError, NotFound):
            return None

    def _check(self, digest: str, actual: Blob) -> None:
        if actual.digest != digest:
            raise IntegrityError(
                f"Blob {digest} in artifact store {self._url!r} is corrupt: its content "
                f"hashes to {actual.digest}. Delete it and store the original content again."
            )

    def _write_local(self, digest: str, src: io.BufferedIOBase) -> Blob:
        assert self._local is not None
        folder = self._local / "blobs" / digest[:2]
        with self._io(f"Writing blob {digest}"):
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                _fsync_dir(folder.parent)
            # Read-only, so a hard link handed out by local_path() cannot be edited in place.
            tmp, out = _create_temp(folder / digest[2:], 0o444)
            try:
                with out:
                    # Name the blob by the bytes actually written, not by the earlier hash:
                    # a source file changed in between must not yield a blob that lies.
                    blob = _copy(src, out)
                    out.flush()
                    # Durable before visible: metadata (SQLite, PostgreSQL) commits with
                    # fsync, and a torn blob behind a committed digest would be data lost.
                    os.fsync(out.fileno())
                final = self._local / "blobs" / blob.digest[:2] / blob.digest[2:]
                final.parent.mkdir(exist_ok=True)
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(final.parent)
        return blob


def _check_digest(digest: str) -> None:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidArgument(
            f"Malformed digest {digest!r}: expected 64 lowercase hex characters (blake3)."
        )


def _open_source(path: str | os.PathLike[str]) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except FileNotFoundError as e:
        raise NotFound(f"File {os.fspath(path)!r} not found. Check the path.") from e
    except IsADirectoryError as e:
        raise InvalidArgument(f"{os.fspath(path)!r} is a folder; pass a file.") from e


def _copy(src: io.BufferedIOBase, dst: io.BufferedIOBase | None) -> Blob:
    hasher, size = blake3.blake3(), 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        hasher.update(view[:n])
        if dst is not None:
            dst.write(view[:n])
        size += n
    return Blob(hasher.hexdigest(), size)


def _create_temp(beside: Path, mode: int) -> tuple[Path, io.BufferedWriter]:
    # Same folder as the target so os.replace is a rename; O_EXCL and a random name so
    # concurrent writers and leftovers of crashed ones never collide.
    tmp = beside.with_name(f".{beside.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    return tmp, os.fdopen(fd, "wb")


def _fsync_dir(path: Path) -> None:
    # A rename or new folder is durable only once the folder holding its entry is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
