"""Blobs through a team server, streamed both ways in 1 MiB chunks. An upload cut short
(a dropped connection, a killed client) resumes from what the server holds."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import httpx

from ferryml.errors import IntegrityError, StoreUnavailable
from ferryml.store.artifacts import Blob, _create_temp, digest_bytes, digest_file
from ferryml.store.http import ServerClient

__all__ = ["HttpArtifactStore"]

_CHUNK = 1 << 20
_ATTEMPTS = 5


class HttpArtifactStore:
    """The ``ArtifactStore`` methods the core uses, answered by ``ferry server``."""

    def __init__(self, client: ServerClient) -> None:
        self._client = client

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

    def put_bytes(self, data: bytes) -> Blob:
        blob = digest_bytes(data)
        if self.size(blob.digest) != blob.size:
            self._upload(blob, lambda: io.BytesIO(data))
        return blob

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        blob = digest_file(path)
        if self.size(blob.digest) != blob.size:
            self._upload(blob, lambda: open(path, "rb"))  # noqa: SIM115 - closed by _upload
        return blob

    ingest_file = put_file

    def ingest_small(self, path: str | os.PathLike[str], size: int) -> Blob:
        return self.put_file(path)

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

    def get_file(self, digest: str, dest: str | os.PathLike[str], *, verify: bool = True) -> Path:
        """Stream the blob to ``dest`` atomically; a download cut short resumes."""
        import blake3

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, out = _create_temp(dest, 0o666)
        hasher = blake3.blake3()
        try:
            with out:
                for attempt in range(_ATTEMPTS):
                    headers = {"Range": f"bytes={out.tell()}-"} if out.tell() else {}
                    try:
                        with self._client.stream(f"/api/v1/blobs/{digest}", headers) as response:
                            # As they arrive: re-cutting them to a fixed size cost
                            # more than the hashing.
                            for chunk in response.iter_bytes():
                                out.write(chunk)
                                hasher.update(chunk)
                        break
                    except httpx.TransportError as e:
                        if attempt == _ATTEMPTS - 1:
                            raise StoreUnavailable(
                                f"Downloading blob {digest} from {self.url} failed: {e}."
                            ) from e
            if verify and hasher.hexdigest() != digest:
                raise IntegrityError(f"Blob {digest} from {self.url} does not match its digest.")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def restore_small(self, digest: str, dest: Path, size: int) -> None:
        self.get_file(digest, dest, verify=False)

    def list_digests(self) -> set[str]:
        raise StoreUnavailable(
            "Listing every blob is done on the team server's host (ferry gc there), not through it."
        )


def _read(f: Any) -> Any:
    while chunk := f.read(_CHUNK):
        yield chunk
