"""Blobs through a team server, streamed both ways. An upload cut short (a dropped
connection, a killed client) resumes from what the server holds; a download from where
it stopped."""

from __future__ import annotations

import http.client
import io
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import httpx

from ferryml.errors import IntegrityError, NotFound, StoreUnavailable
from ferryml.store._blobfiles import Blob, _create_temp, digest_bytes, digest_file
from ferryml.store.http import ServerClient

__all__ = ["HttpArtifactStore"]

_CHUNK = 1 << 20
_ATTEMPTS = 5
_THREADED_HASH = 16 << 20  # files from this size are hashed on every core, through mmap


class HttpArtifactStore:
    """The ``ArtifactStore`` methods the core uses, answered by ``ferry server``."""

    def __init__(self, client: ServerClient) -> None:
        self._client = client
        self._signs: bool | None = None  # whether the server hands out signed URLs

    @property
    def url(self) -> str:
        return self._client.url

    def open(self) -> HttpArtifactStore:
        return self

    def close(self) -> None:
        self._client.close()

    def size(self, digest: str) -> int | None:
        response = self._client.send("HEAD", f"/api/v1/blobs/{digest}")
        if response.status_code == 404:
            return None
        return int(response.headers["content-length"])

    def exists(self, digest: str) -> bool:
        return self.size(digest) is not None

    def local_path(self, digest: str) -> Path | None:
        return None

    def blob_path(self, digest: str) -> str | None:
        return None

    def put_bytes(self, data: bytes) -> Blob:
        blob = digest_bytes(data)
        if not self._reuse(blob):
            self._store(blob, lambda: io.BytesIO(data))
        return blob

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        blob = _digest_file(path)
        if not self._reuse(blob):
            self._store(blob, lambda: open(path, "rb"))  # noqa: SIM115 - closed by the caller
        return blob

    ingest_file = put_file

    def ingest_small(self, path: str | os.PathLike[str], size: int) -> Blob:
        return self.put_file(path)

    def _reuse(self, blob: Blob) -> bool:
        """Whether the server holds the blob; if so it keeps it from a running ``ferry gc``
        until this client's reference to it is recorded."""
        try:
            self._client.call(
                "POST", f"/api/v1/blobs/{blob.digest}/reuse", {"size": blob.size}, idempotent=True
            )
        except NotFound:
            return False
        return True

    def _store(self, blob: Blob, source: Any) -> None:
        if self._signs is not False:
            signed = self._client.call("POST", f"/api/v1/blobs/{blob.digest}/signed-uploads")
            self._signs = signed["url"] is not None
            if self._signs:
                self._upload_signed(blob, source, signed)
                return
        self._upload(blob, source)

    def _upload_signed(self, blob: Blob, source: Any, signed: dict[str, Any]) -> None:
        """PUT the bytes straight into the bucket, then have the server check and store them."""
        with source() as f, httpx.Client(timeout=self._client.timeout) as bucket:
            headers = {"Content-Length": str(blob.size)}  # no token: the URL is signed
            response = bucket.put(signed["url"], content=_read(f), headers=headers)
        if response.status_code >= 300:
            raise StoreUnavailable(
                f"Uploading blob {blob.digest} to the signed URL {self.url} handed out failed: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        path = f"/api/v1/blobs/{blob.digest}/signed-uploads/{signed['upload_id']}"
        self._client.call("POST", path)

    def _upload(self, blob: Blob, source: Any) -> None:
        offset = 0
        for attempt in range(_ATTEMPTS):
            if attempt:
                state = self._client.call("GET", f"/api/v1/uploads/{blob.digest}")
                if state["complete"]:
                    return
                offset = int(state["offset"])
            try:
                with source() as f:
                    f.seek(offset)
                    response = self._client.send(
                        "PUT",
                        f"/api/v1/blobs/{blob.digest}",
                        content=_read(f),
                        headers={
                            "Upload-Length": str(blob.size),
                            "Upload-Offset": str(offset),
                            # Announced, so the body is not sent in chunked encoding.
                            "Content-Length": str(blob.size - offset),
                            "Content-Type": "application/octet-stream",
                        },
                    )
                if response.status_code == 201 or response.json().get("complete"):
                    return
            except (StoreUnavailable, httpx.TransportError):
                if attempt == _ATTEMPTS - 1:
                    raise
        raise StoreUnavailable(
            f"Uploading blob {blob.digest} to {self.url} did not complete after "
            f"{_ATTEMPTS} attempts; run the command again to resume it."
        )

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        data = self._client.send("GET", f"/api/v1/blobs/{digest}").content
        if verify and digest_bytes(data).digest != digest:
            raise IntegrityError(f"Blob {digest} from {self.url} does not match its digest.")
        return data

    def get_file(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        verify: bool = True,
        size: int | None = None,
    ) -> Path:
        """Stream the blob to ``dest`` atomically; a download cut short resumes, for as long
        as the client retries a request (``retry_seconds`` without a byte arriving). With
        ``size``, a file of another size never lands under ``dest``, verified or not.

        Raises:
            StoreUnavailable: the server stopped answering, or ``dest``'s disk is full.
            IntegrityError: the bytes do not match ``digest`` (or ``size``).
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, out = _create_temp(dest, 0o666)
        hasher = blake3.blake3()
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        try:
            with out:
                fd = out.fileno()
                written = 0
                source, signed = self._source(digest)
                deadline, failures = time.monotonic() + self._client.retry_seconds, 0
                while True:
                    headers = {"Range": f"bytes={written}-"} if written else {}
                    before = written
                    try:
                        with self._client.stream(source, headers, signed=signed) as response:
                            at = _resumed_at(response)
                            if at is None and written or at is not None and at != written:
                                written, hasher = 0, blake3.blake3()  # all again: this body
                                if at is not None:  # if whole, else the next answer's
                                    raise http.client.HTTPException(
                                        f"asked from byte {before}, answered from byte "
                                        f"{at if at >= 0 else 'unknown'}"
                                    )
                            _local(os.ftruncate, dest, fd, written)
                            _local(os.lseek, dest, fd, written, os.SEEK_SET)
                            total = _total(response)
                            if size is not None and total is not None and total != size:
                                raise IntegrityError(
                                    f"Blob {digest} from {self.url} has {total} bytes, not {size}."
                                )
                            size = total if size is None else size
                            # Read into one buffer, written and hashed from there: no copy
                            # of the bytes but the kernel's.
                            while n := response.readinto(view):
                                _local(_write_all, dest, fd, view[:n])
                                hasher.update(view[:n])
                                written += n
                            # http.client's readinto answers 0 when the connection closes
                            # early, as at the end; with no Content-Length, only the size
                            # known tells the two apart.
                            if response.length or size is not None and written < size:
                                raise http.client.IncompleteRead(b"", response.length)
                        break
                    except (OSError, http.client.HTTPException) as e:
                        if written > before:  # progress: a new deadline, a short wait
                            deadline, failures = time.monotonic() + self._client.retry_seconds, 0
                        if time.monotonic() >= deadline:
                            raise StoreUnavailable(
                                f"Downloading blob {digest} from {self.url} failed: {e}."
                            ) from e
                        time.sleep(self._client.backoff(failures))
                        failures += 1
            if size is not None and written != size:
                raise IntegrityError(
                    f"Blob {digest} from {self.url} has {written} bytes, not {size}."
                )
            if verify and hasher.hexdigest() != digest:
                raise IntegrityError(f"Blob {digest} from {self.url} does not match its digest.")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def _source(self, digest: str) -> tuple[str, bool]:
        """Where to download a blob from: a URL the server signed, or the server itself."""
        if self._signs is not False:
            url = self._client.call("GET", f"/api/v1/blobs/{digest}/url")["url"]
            self._signs = url is not None
            if url is not None:
                return str(url), True
        return f"/api/v1/blobs/{digest}", False

    def restore_small(self, digest: str, dest: Path, size: int) -> None:
        self.get_file(digest, dest, verify=False, size=size)

    def list_digests(self) -> set[str]:
        raise StoreUnavailable(
            "Listing every blob is done on the team server's host (ferry gc there), not through it."
        )


def _digest_file(path: str | os.PathLike[str]) -> Blob:
    """``digest_file``, with a large file hashed on every core: before an upload, the
    hash is time the transfer waits for."""
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    if size < _THREADED_HASH or not os.path.isfile(path):
        return digest_file(path)  # and its errors, for a missing file or a folder
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(os.fspath(path))
    return Blob(hasher.hexdigest(), size)


def _resumed_at(response: http.client.HTTPResponse) -> int | None:
    """Where a 206 answer's body starts (its Content-Range), None for a whole one, -1 for
    a part whose Content-Range does not say (never to be written as any offset)."""
    if response.status != 206:
        return None
    match = re.match(r"bytes (\d+)-", response.getheader("Content-Range") or "")
    return int(match.group(1)) if match else -1


def _total(response: http.client.HTTPResponse) -> int | None:
    """The blob's size as the answer gives it, if it does."""
    if response.status != 206:
        return response.length
    match = re.match(r"bytes \d+-\d+/(\d+)$", response.getheader("Content-Range") or "")
    return int(match.group(1)) if match else None


def _local(op: Callable[..., Any], dest: Path, *args: Any) -> Any:
    """``op`` on the file being downloaded: its failure (a full disk) is not the server's,
    and trying again would not help."""
    try:
        return op(*args)
    except OSError as e:
        raise StoreUnavailable(
            f"Cannot write {dest}: {e.strerror or e}. Free space on its disk (or raise its "
            "file-size limit) and download again."
        ) from e


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _read(f: Any) -> Any:
    while chunk := f.read(_CHUNK):
        yield chunk
