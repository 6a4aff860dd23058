"""Content-addressed artifact store: blobs named by their blake3 digest, written
atomically, stored once, in a local folder or at any fsspec URL.

Layout under the root: ``blobs/<digest[:2]>/<digest[2:]>``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blake3

from ferryml.errors import FerryError, IntegrityError, InvalidArgument, NotFound, StoreUnavailable
from ferryml.store._blob_gc import BlobCollection
from ferryml.store._blobfiles import (
    _DIGEST,
    _READ_BLOCK,
    Blob,
    _check_digest,
    _copy,
    _copy_file,
    _create_temp,
    _fsync_dir,
    _open_source,
    _put,
    _reuse_path,
    _store_new,
    _write_new,
    digest_bytes,
    digest_file,
)

__all__ = ["ArtifactStore", "Blob", "digest_bytes", "digest_file"]

SMALL = 1 << 20  # files below this are read and written whole
_SIGNS = ("s3", "s3a")  # stores whose URLs can be presigned


class ArtifactStore(BlobCollection):
    """Blobs addressed by digest under ``url``: ``file:///abs/path`` (or a plain absolute
    path) or any fsspec URL such as ``s3://bucket/prefix``. The constructor does no I/O.

    >>> store = ArtifactStore("/tmp/ferry-artifacts").open()
    >>> store.get_bytes(store.put_bytes(b"weights").digest)
    b'weights'
    """

    def __init__(
        self, url: str, *, storage_options: dict[str, Any] | None = None, fsync: bool = False
    ) -> None:
        self._url = url
        # Off by default, like the SQLite store in WAL mode: a rename is atomic against a
        # crashed process; fsync adds safety against power loss at ~6x the cost per small file.
        self._fsync = fsync
        # A cached listing would make exists() miss blobs written by other clients.
        self._options = {"use_listings_cache": False, **(storage_options or {})}
        self._fs: Any = None
        protocol, sep, rest = url.partition("://")
        self._protocol, self._root = (protocol, rest.rstrip("/")) if sep else ("file", url)
        self._local = Path(self._root or "/") if self._protocol == "file" else None
        self._blobs = os.fspath(self._local / "blobs") if self._local is not None else ""
        if self._local is not None and not os.path.isabs(self._root or "/"):
            raise InvalidArgument(
                f"Artifact store URL {url!r} is neither an absolute path nor a URL. "
                "Use /abs/path, file:///abs/path or s3://bucket/prefix."
            )
        if self._local is None and not self._root.strip("/"):
            raise InvalidArgument(f"Artifact store URL {url!r} names no bucket.")

    @property
    def url(self) -> str:
        """The URL the store was created with."""
        return self._url

    @property
    def fsync(self) -> bool:
        """Whether a write is on disk before it returns (safe against power loss)."""
        return self._fsync

    def close(self) -> None:
        """Nothing to release (fsspec keeps its own connections); the HTTP store has one."""

    def open(self) -> ArtifactStore:
        """Create the root folder (file) or reach the bucket (remote); return self. Raises
        StoreUnavailable, naming the URL, if the store cannot be created or reached."""
        if self._local is not None:
            blobs = self._local / "blobs"
            try:
                blobs.mkdir(parents=True, exist_ok=True)
                # Only a real write proves writability: permission bits do not stop root,
                # and a read-only mount passes access() checks.
                probe, out = _create_temp(blobs / "probe", 0o666)
                out.close()
                probe.unlink()
            except OSError as e:
                raise StoreUnavailable(
                    f"Artifact store {self._url!r} is not writable: creating {blobs} failed "
                    f"({e.strerror or e}). Set FERRY_ARTIFACTS to a writable location."
                ) from e
            return self
        bucket = self._root.strip("/").split("/")[0]
        fs = self._filesystem()
        try:
            fs.info(bucket)
        except Exception as e:  # backends' connection and credential errors share no base
            reason = "it does not exist" if isinstance(e, FileNotFoundError) else repr(e)
            raise StoreUnavailable(
                f"Artifact store {self._url!r} is unreachable: checking bucket {bucket!r} "
                f"failed ({reason}). Check the bucket name, endpoint and credentials, or "
                "set FERRY_ARTIFACTS to another location."
            ) from e
        return self

    def put_file(self, path: str | os.PathLike[str], *, replace: bool = False) -> Blob:
        """Store the file at ``path`` unless its content is stored already; return its blob.
        With ``replace``, a stored blob of that digest is written again (it is corrupt).

        Raises NotFound if there is no such file, StoreUnavailable if the store fails.
        """
        with _open_source(path) as src:
            # Hash before writing: content stored already costs one read and no write.
            blob = _copy(src, None)
            if not replace and self._reuse(blob.digest, blob.size):
                return blob
            src.seek(0)
            return self._write(
                blob, src, lambda fs, key: _put(fs, self._protocol, path, key), replace=replace
            )

    def ingest_file(self, path: str | os.PathLike[str]) -> Blob:
        """``put_file`` for content that is probably new: one pass reads, hashes and writes
        it, where ``put_file`` reads it twice to skip the write of stored content."""
        if self._local is None:
            return self.put_file(path)
        with _open_source(path) as src:
            return self._write(Blob("0" * 64, -1), src, lambda fs, key: None)

    def ingest_small(self, path: str | os.PathLike[str], size: int) -> Blob:
        """``ingest_file`` for a small file (under ``SMALL`` bytes) of a local store, in a
        handful of system calls and no pathlib: many small files are where per-file
        overhead shows."""
        if self._local is None or size >= SMALL:
            return self.ingest_file(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as e:
            raise NotFound(f"File {os.fspath(path)!r} not found. Check the path.") from e
        try:  # one read for a file of the size its stat said, a few more if it grew
            data = os.read(fd, size + 1)
            while len(data) > size and (more := os.read(fd, 1 << 16)):
                data += more
        finally:
            os.close(fd)
        digest = blake3.blake3(data).hexdigest()
        try:
            _store_new(f"{self._blobs}/{digest[:2]}/{digest[2:]}", data, self._fsync)
        except OSError as e:
            raise StoreUnavailable(
                f"Writing blob {digest} in artifact store {self._url!r} failed: {e}. "
                "Check the store is writable and has free space."
            ) from e
        return Blob(digest, len(data))

    def blob_path(self, digest: str) -> str | None:
        """``local_path`` as a string, unchecked: for loops over many blobs whose digests
        the caller checked."""
        return None if self._local is None else f"{self._blobs}/{digest[:2]}/{digest[2:]}"

    def restore_small(self, digest: str, dest: Path, size: int) -> None:
        """``get_file`` without verification for a small blob of a local store, written
        beside ``dest`` and renamed over it; ``dest``'s folder must exist."""
        if self._local is None or size >= SMALL:
            self.get_file(digest, dest, verify=False)
            return
        try:
            with open(self._path(digest), "rb", buffering=0) as src:
                data = src.read()
        except FileNotFoundError as e:
            raise NotFound(f"Blob {digest} not found in artifact store {self._url!r}.") from e
        _write_new(os.fspath(dest), data, 0o666, False)

    def get_blobs(self, digests: list[str]) -> dict[str, bytes]:
        """The content of many small blobs at once, each checked against its digest (a
        remote store fetches them concurrently). Raises NotFound naming the first absent
        one, IntegrityError."""
        for digest in digests:
            _check_digest(digest)
        with self._io("Reading blobs"):
            if self._local is None:
                keys = [self._key(d) for d in digests]
                # s3fs would ask each blob's size first (to split large reads): one
                # request per blob, not two
                whole = {"max_concurrency": 1} if self._protocol in _SIGNS else {}
                got = self._filesystem().cat(keys, on_error="return", **whole)
                found = dict(zip(digests, (got[k] for k in keys), strict=True))
            else:
                found = {}
                for digest in digests:
                    try:
                        with open(self._path(digest), "rb", buffering=0) as f:
                            found[digest] = f.read()
                    except FileNotFoundError as e:
                        found[digest] = e
        for digest, data in found.items():
            if isinstance(data, FileNotFoundError):
                raise NotFound(f"Blob {digest} not found in artifact store {self._url!r}.")
            if isinstance(data, BaseException):
                raise StoreUnavailable(
                    f"Reading blob {digest} in artifact store {self._url!r} failed: {data}. "
                    "Check the store is reachable."
                ) from data
            self._check(digest, digest_bytes(data))
        return found

    def put_blobs(self, blobs: dict[str, bytes]) -> None:
        """Store many small blobs, each named by its digest (checked here), at once: a
        remote store sends them concurrently. For blobs known to be absent: nothing is
        checked or reused first.

        Raises IntegrityError if a digest does not name its content, StoreUnavailable."""
        for digest, data in blobs.items():
            _check_digest(digest)
            if digest_bytes(data).digest != digest:
                raise IntegrityError(
                    f"Blob {digest} read for copying hashes to something else: its source "
                    "is corrupt. Store the original content again."
                )
        with self._io("Writing blobs"):
            if self._local is None:
                self._filesystem().pipe({self._key(d): data for d, data in blobs.items()})
                return
            for digest, data in blobs.items():
                _write_new(f"{self._blobs}/{digest[:2]}/{digest[2:]}", data, 0o444, self._fsync)

    def list_digests(self) -> set[str]:
        """Every stored blob's digest, from one listing (for transfers between stores)."""
        with self._io("Listing blobs"):
            if self._local is not None:
                blobs = self._local / "blobs"
                return {
                    fan.name + name
                    for fan in blobs.iterdir()
                    if fan.is_dir() and len(fan.name) == 2
                    for name in os.listdir(fan)
                    if len(name) == 62 and not name.startswith(".")
                }
            fs = self._filesystem()
            prefix = f"{self._root}/blobs/"
            try:
                keys = fs.find(prefix)
            except FileNotFoundError:
                return set()
        found = set()
        for key in keys:
            fan, _, rest = key.partition(prefix)[2].partition("/")
            if _DIGEST.fullmatch(fan + rest):
                found.add(fan + rest)
        return found

    def put_bytes(self, data: bytes) -> Blob:
        """Store ``data`` unless it is stored already; return its blob."""
        blob = digest_bytes(data)
        if self._reuse(blob.digest, blob.size):
            return blob
        return self._write(blob, io.BytesIO(data), lambda fs, key: fs.pipe_file(key, data))

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

    def get_file(self, digest: str, dest: str | os.PathLike[str], *, verify: bool = True) -> Path:
        """Write the blob to ``dest`` atomically, creating folders; return dest's path.

        Raises NotFound if absent, IntegrityError if the content does not match; either
        way ``dest`` is left as it was.
        """
        dest = Path(dest)
        # Open the blob first, so a missing one leaves no folders behind.
        with self._io(f"Reading blob {digest}", digest):
            src = self._open_blob(digest)
        with src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp, out = _create_temp(dest, 0o666)
            try:
                with out, self._io(f"Reading blob {digest}", digest):
                    blob = _copy(src, out)
                if verify:
                    self._check(digest, blob)
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return dest

    def verify(self, digest: str) -> bool:
        """Whether the blob is stored and reads back whole (its bytes hash to ``digest``):
        read in full, streamed.

        Raises StoreUnavailable if the store fails."""
        try:
            with self._io(f"Reading blob {digest}", digest), self._open_blob(digest) as src:
                return _copy(src, None).digest == digest
        except NotFound:
            return False

    def size(self, digest: str) -> int | None:
        """The stored blob's size in bytes, or None if it is not stored."""
        return self._stored_size(digest)

    def open_blob(self, digest: str) -> Any:
        """A binary file object reading the blob (unverified: the reader checks it).

        Raises NotFound if absent.
        """
        with self._io(f"Reading blob {digest}", digest):
            return self._open_blob(digest)

    def adopt_file(self, path: Path, digest: str) -> None:
        """Store the file at ``path``, whose content the caller has hashed to ``digest``,
        moving it in when it lies on the same local filesystem (an upload's temp file); with
        ``fsync`` the caller synced it, and the move is on disk when this returns."""
        _check_digest(digest)
        with self._io(f"Writing blob {digest}"):
            if self._local is None:
                _put(self._filesystem(), self._protocol, path, self._key(digest))
                path.unlink()
                return
            final = self._path(digest)
            if not final.parent.is_dir():
                final.parent.mkdir(parents=True, exist_ok=True)
                _fsync_dir(final.parent.parent, self._fsync)
            os.chmod(path, 0o444)
            os.replace(path, final)
            _fsync_dir(final.parent, self._fsync)

    def reuse(self, digest: str, size: int) -> bool:
        """Whether the blob is stored with ``size`` bytes, for a writer about to refer to it
        instead of storing it again; if so its age restarts, so that a ``ferry gc``
        running meanwhile keeps it."""
        return self._reuse(digest, size)

    def signed_url(self, digest: str, expires: int) -> str | None:
        """A URL that reads the blob without credentials for ``expires`` seconds, from an
        S3 store; None from one that cannot sign URLs.

        Raises NotFound if absent."""
        if self._protocol not in _SIGNS:
            return None
        if self._stored_size(digest) is None:
            raise NotFound(f"Blob {digest} not found in artifact store {self._url!r}.")
        with self._io(f"Signing a URL for blob {digest}"):
            return str(self._filesystem().url(self._key(digest), expires=expires))

    def signed_upload(self, expires: int) -> tuple[str, str] | None:
        """An upload id and a URL where a client may PUT a new blob's bytes without
        credentials for ``expires`` seconds (``adopt_upload`` then checks and stores them);
        None from a store that cannot sign URLs."""
        if self._protocol not in _SIGNS:
            return None
        upload_id = secrets.token_hex(16)
        with self._io("Signing an upload URL"):
            url = self._filesystem().url(
                self._upload_key(upload_id), expires=expires, client_method="put_object"
            )
        return upload_id, str(url)

    def adopt_upload(self, upload_id: str, digest: str) -> None:
        """Store the bytes PUT at ``signed_upload``'s URL as blob ``digest`` if they hash to
        it; remove them either way.

        Raises NotFound if nothing was PUT there, InvalidArgument if they do not match."""
        _check_digest(digest)
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or self._protocol not in _SIGNS:
            raise InvalidArgument(f"Upload {upload_id!r} is not one this store signed.")
        staged, fs = self._upload_key(upload_id), self._filesystem()
        with self._io(f"Reading upload {upload_id}"):
            try:
                src = fs.open(staged, "rb", block_size=_READ_BLOCK)
            except FileNotFoundError as e:
                raise NotFound(f"Nothing was PUT for upload {upload_id}; send the bytes.") from e
            with src:
                actual = _copy(src, None).digest  # the bytes, not the client's word
        try:
            if actual != digest:
                raise InvalidArgument(
                    f"The uploaded bytes hash to {actual}, not {digest}; nothing was stored. "
                    "Upload the blob again."
                )
            with self._io(f"Writing blob {digest}"):
                fs.copy(staged, self._key(digest))
        finally:
            with self._io(f"Removing upload {upload_id}"):
                fs.rm(staged)

    def objects(self) -> tuple[Any, str, bool]:
        """(fsspec filesystem, root key, whether local) for objects beside the blobs, such
        as packs (see ``store.packs``)."""
        return self._filesystem(), self._root, self._local is not None

    def _upload_key(self, upload_id: str) -> str:
        return f"{self._root}/uploads/{upload_id}"

    def uploads_folder(self) -> Path | None:
        """Where a server keeps partial uploads for this store, beside its blobs so an
        upload moves in with a rename; None for a remote store."""
        return None if self._local is None else self._local / "uploads"

    def _reuse(self, digest: str, size: int) -> bool:
        """Whether the blob is stored with this size; if so its mtime becomes now, so that
        a concurrent ``ferry gc`` keeps it."""
        if self._local is None:
            return self._stored_size(digest) == size
        _check_digest(digest)
        with self._io(f"Checking blob {digest}", digest):
            return _reuse_path(os.fspath(self._path(digest)), size)

    def local_path(self, digest: str) -> Path | None:
        """The blob's path (stored yet or not) in a file:// store, else None."""
        _check_digest(digest)
        return None if self._local is None else self._path(digest)

    def _path(self, digest: str) -> Path:
        assert self._local is not None
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
                    f"Artifact store {self._url!r} needs a missing package ({e}). "
                    "For s3:// run: pip install 'ferryml[s3]'."
                ) from e
            except (ValueError, TypeError) as e:  # unknown protocol, bad storage_options
                raise InvalidArgument(f"Artifact store {self._url!r} cannot be set up: {e}") from e
        return self._fs

    @contextmanager
    def _io(self, what: str, digest: str | None = None) -> Iterator[None]:
        # Remote clients raise their own types (botocore, aiohttp), not only OSError.
        failure = OSError if self._local is not None else Exception
        try:
            yield
        except FerryError:
            raise
        except FileNotFoundError as e:
            if digest is None:
                raise StoreUnavailable(f"{what} in {self._url!r} failed: {e}.") from e
            raise NotFound(f"Blob {digest} not found in artifact store {self._url!r}.") from e
        except failure as e:
            raise StoreUnavailable(
                f"{what} in artifact store {self._url!r} failed: {e}. "
                "Check the store is reachable, writable and has free space."
            ) from e

    def _open_blob(self, digest: str) -> Any:
        _check_digest(digest)
        if self._local is not None:
            return open(self._path(digest), "rb")
        return self._filesystem().open(self._key(digest), "rb", block_size=_READ_BLOCK)

    def _stored_size(self, digest: str) -> int | None:
        _check_digest(digest)
        try:
            with self._io(f"Checking blob {digest}", digest):
                if self._local is not None:
                    return self._path(digest).stat().st_size
                return int(self._filesystem().info(self._key(digest))["size"])
        except NotFound:
            return None

    def _check(self, digest: str, actual: Blob) -> None:
        if actual.digest != digest:
            raise IntegrityError(
                f"Blob {digest} in artifact store {self._url!r} is corrupt: its content "
                f"hashes to {actual.digest}. Delete it and store the original content again."
            )

    def _write(
        self,
        blob: Blob,
        src: io.BufferedIOBase,
        upload: Callable[[Any, str], object],
        *,
        replace: bool = False,
    ) -> Blob:
        with self._io(f"Writing blob {blob.digest}"):
            if self._local is None:
                upload(self._filesystem(), self._key(blob.digest))  # a PUT is atomic
                return blob
            folder = self._path(blob.digest).parent
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                _fsync_dir(folder.parent, self._fsync)
            # Read-only, so a hard link to the blob cannot be edited in place by mistake.
            tmp, out = _create_temp(folder / blob.digest[2:], 0o444)
            try:
                with out:
                    # Name the blob by the bytes written, not the earlier hash: if the
                    # source changed in between, the store must still never lie.
                    blob = _copy_file(src, out, tmp)
                    if self._fsync:  # durable before visible
                        out.flush()
                        os.fsync(out.fileno())
                final = self._path(blob.digest)
                final.parent.mkdir(exist_ok=True)
                if not replace and self._reuse(blob.digest, blob.size):
                    tmp.unlink()  # stored already: ingest_file learns that only now
                else:
                    os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(final.parent, self._fsync)
        return blob
