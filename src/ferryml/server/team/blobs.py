"""Blobs (artifacts and data files) streamed through the server in both directions with
bounded memory. An upload is a ``PUT`` at an offset: one cut short keeps what arrived,
and the client sends the rest from ``GET /uploads/{digest}``'s offset."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.server.team._render import render

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["blobs"])

_CHUNK = 1 << 20
_SEND = 4 << 20  # a download's bytes read at once: a quarter of the reads and sends of 1 MiB
_BATCH = 4 << 20  # an upload's bytes written at once, while the next batch arrives
_SYNC_EVERY = 64 << 20  # an upload's bytes between writebacks to disk
_EXPIRES = 3600  # seconds a signed URL is good for
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=(\d+)-")


class BlobInfo(BaseModel):
    digest: str
    size: int


class BlobSize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=0)


class SignedUrl(BaseModel):
    url: str | None
    expires: int  # seconds
    upload_id: str | None = None


class UploadState(BaseModel):
    digest: str
    offset: int
    complete: bool


def _digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"Blob digest {digest!r} is not 64 lowercase hex digits.")
    return digest


def _artifacts(request: Request) -> Any:
    return request.app.state.artifacts


def _part(request: Request, digest: str) -> Path:
    folder: Path = request.app.state.uploads
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_digest(digest)}.part"


@router.head("/blobs/{digest}")
def blob_exists(digest: str, request: Request) -> Response:
    size = _artifacts(request).size(_digest(digest))
    if size is None:
        return Response(status_code=404)
    return Response(headers={"Content-Length": str(size), "Accept-Ranges": "bytes"})


@router.get(
    "/blobs/{digest}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(digest: str, request: Request, range: str | None = Header(default=None)) -> Response:
    """The blob's bytes; ``Range: bytes=N-`` resumes a download cut short."""
    store = _artifacts(request)
    size = store.size(_digest(digest))
    if size is None:
        raise NotFound(f"Blob {digest} not found on this server.")
    start = 0
    if range is not None:
        match = _RANGE.fullmatch(range.strip())
        if match is None or int(match.group(1)) > size:
            raise InvalidArgument(f"Range {range!r} is not 'bytes=N-' with N up to {size}.")
        start = int(match.group(1))
    source = store.open_blob(digest)
    headers = {"Content-Length": str(size - start), "Accept-Ranges": "bytes"}
    if range is not None:
        headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
    return StreamingResponse(
        _chunks(source, start, size),
        status_code=206 if range is not None else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


def _chunks(source: Any, start: int, size: int) -> Iterator[bytes]:
    with source:
        if start:
            source.seek(start)
        left = size - start
        while left > 0 and (chunk := source.read(min(_SEND, left))):
            left -= len(chunk)
            yield chunk


@router.get("/blobs/{digest}/url", response_model=SignedUrl)
def signed_download(digest: str, request: Request) -> Response:
    """A URL that reads the blob straight from the bucket, when the server hands them out
    (``ferry server --signed-urls`` over S3); ``url`` is null when it streams blobs itself."""
    store = _artifacts(request)
    url = store.signed_url(_digest(digest), _EXPIRES) if request.app.state.signed_urls else None
    if url is None and store.size(digest) is None:
        raise NotFound(f"Blob {digest} not found on this server.")
    return render(SignedUrl(url=url, expires=_EXPIRES), SignedUrl)


@router.post("/blobs/{digest}/signed-uploads", response_model=SignedUrl, status_code=201)
def create_signed_upload(digest: str, request: Request) -> Response:
    """A URL to PUT the blob's bytes straight into the bucket, then to be stored with
    ``POST .../signed-uploads/{upload_id}``; ``url`` is null when the server streams."""
    signed = None
    if request.app.state.signed_urls:
        signed = _artifacts(request).signed_upload(_EXPIRES)
    if signed is None:
        return render(SignedUrl(url=None, expires=_EXPIRES), SignedUrl, 201)
    upload_id, url = signed
    return render(SignedUrl(url=url, expires=_EXPIRES, upload_id=upload_id), SignedUrl, 201)


@router.post("/blobs/{digest}/signed-uploads/{upload_id}", response_model=UploadState)
def finish_signed_upload(digest: str, upload_id: str, request: Request) -> Response:
    """Store the bytes PUT at a signed URL as the blob, once they hash to its digest."""
    if not request.app.state.signed_urls:
        raise InvalidArgument("This server does not hand out signed URLs; upload through it.")
    _artifacts(request).adopt_upload(upload_id, _digest(digest))
    size = _artifacts(request).size(digest)
    return render(UploadState(digest=digest, offset=size or 0, complete=True), UploadState, 201)


@router.get("/uploads/{digest}", response_model=UploadState)
def upload_state(digest: str, request: Request) -> Response:
    """How much of an upload the server holds, so a client resumes from there."""
    if _artifacts(request).size(_digest(digest)) is not None:
        return render(UploadState(digest=digest, offset=0, complete=True), UploadState)
    part = _part(request, digest)
    offset = part.stat().st_size if part.exists() else 0
    return render(UploadState(digest=digest, offset=offset, complete=False), UploadState)


@router.post("/blobs/{digest}/reuse", response_model=BlobInfo, responses={404: {}})
def reuse_blob(digest: str, body: BlobSize, request: Request) -> Response:
    """Whether the blob is stored (404 if not), for a writer about to refer to it instead of
    uploading it: its age restarts, so a ``ferry gc`` running meanwhile keeps it until the
    reference is recorded. A ``HEAD`` changes nothing: a read must not keep garbage alive."""
    if not _artifacts(request).reuse(_digest(digest), body.size):
        raise NotFound(f"Blob {digest} of {body.size} bytes is not stored; upload it.")
    return render(BlobInfo(digest=digest, size=body.size), BlobInfo)


@router.put(
    "/blobs/{digest}",
    response_model=UploadState,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(
    digest: str,
    request: Request,
    upload_length: int = Header(ge=0),
    upload_offset: int = Header(default=0, ge=0),
) -> Response:
    """Store the bytes ``upload_offset``.. of a blob of ``upload_length`` bytes. Answers
    the offset reached; the blob is stored, checked against its digest and on disk, when
    complete (201)."""
    store = _artifacts(request)
    done = UploadState(digest=digest, offset=upload_length, complete=True)
    if await run_in_threadpool(store.reuse, _digest(digest), upload_length):
        return render(done, UploadState)
    part = _part(request, digest)
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Another client sends the same bytes: wait for it; then they are stored.
            await run_in_threadpool(fcntl.flock, fd, fcntl.LOCK_EX)
            if store.size(digest) is not None:
                return render(done, UploadState)
            if os.fstat(fd).st_nlink == 0:  # it failed and removed the partial file
                raise Conflict(f"Another upload of blob {digest} failed; send it again.") from None
        held = os.fstat(fd).st_size
        if upload_offset > held:
            raise Conflict(
                f"Upload of {digest} cannot continue at byte {upload_offset}: the server holds "
                f"{held} bytes. Resume from GET /api/v1/uploads/{digest}."
            )
        os.ftruncate(fd, upload_offset)
        # Hashed as the bytes arrive: reading a large blob back to hash it took as long
        # again as receiving it. A resumed upload hashes what the server holds first.
        hasher = blake3.blake3()
        if upload_offset:
            await run_in_threadpool(_hash_held, fd, upload_offset, hasher)
        os.lseek(fd, upload_offset, os.SEEK_SET)
        sink = _Sink(fd, hasher, store.fsync)
        written = await _receive(request, sink, upload_offset, upload_length)
        if written < upload_length:
            state = UploadState(digest=digest, offset=written, complete=False)
            return render(state, UploadState, 202)
        await run_in_threadpool(_finish, store, fd, part, hasher.hexdigest(), digest)
    finally:
        os.close(fd)
    return render(done, UploadState, 201)


async def _receive(request: Request, sink: _Sink, offset: int, length: int) -> int:
    """Hand the body to ``sink`` in batches, receiving the next while one is written;
    returns the offset reached."""
    written, batch, size = offset, [], 0
    try:
        async for chunk in request.stream():
            if written + len(chunk) > length:
                await sink.drain()
                os.ftruncate(sink.fd, 0)
                raise InvalidArgument(
                    f"The body runs past Upload-Length ({length} bytes); send the size."
                )
            written += len(chunk)
            batch.append(chunk)
            size += len(chunk)
            if size >= _BATCH:
                await sink.put(batch)
                batch, size = [], 0
        await sink.put(batch)
    finally:
        await sink.drain()
    return written


class _Sink:
    """Writes and hashes an upload's batches on worker threads, one batch at a time (so
    memory stays bounded); a full batch is hashed on one thread while another writes it,
    as writing a large upload into the page cache is as slow as receiving it. With
    ``durable`` (``ferry server --fsync``) it starts writing them back to disk as they
    come, so that the fsync before the answer has little left to do; without, the page
    cache holds them, as it does the local store's blobs, and the upload is not held to
    the disk's speed."""

    def __init__(self, fd: int, hasher: Any, durable: bool) -> None:
        self.fd = fd
        self._hasher = hasher
        self._durable = durable
        self._loop = asyncio.get_running_loop()
        self._writing: asyncio.Future[Any] | None = None
        self._syncing: asyncio.Future[None] | None = None
        self._unsynced = 0

    async def put(self, batch: list[bytes]) -> None:
        if self._writing is not None:
            await self._writing
        size = sum(map(len, batch))
        if size < _BATCH:  # a small upload's only batch, or a large one's last: so few
            # bytes that a second thread saves less than handing them over costs
            self._writing = self._loop.run_in_executor(None, self._write_and_hash, batch)
        else:
            self._writing = self._loop.create_task(self._write_beside_hash(batch))
        self._unsynced += size
        if not self._durable or self._unsynced < _SYNC_EVERY:
            return
        if self._syncing is None or self._syncing.done():
            if self._syncing is not None:
                await self._syncing
            self._syncing = self._loop.run_in_executor(None, os.fdatasync, self.fd)
            self._unsynced = 0

    async def drain(self) -> None:
        """Wait for every write and writeback started (also when the upload failed: the
        file is closed only after them)."""
        for future in (self._writing, self._syncing):
            if future is not None:
                with contextlib.suppress(OSError):
                    await future
        if self._writing is not None:
            self._writing.result()  # a failed write (disk full) fails the upload

    async def _write_beside_hash(self, batch: list[bytes]) -> None:
        # Both ended before the first error is raised: the file is closed after a failure,
        # never while the other thread still writes to it.
        results = await asyncio.gather(
            self._loop.run_in_executor(None, self._write, batch),
            self._loop.run_in_executor(None, self._hash, batch),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _write_and_hash(self, batch: list[bytes]) -> None:
        self._write(batch)
        self._hash(batch)

    def _write(self, batch: list[bytes]) -> None:
        views = [memoryview(b) for b in batch if b]
        while views:  # writev may write less than asked
            n = os.writev(self.fd, views)
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if n:
                views[0] = views[0][n:]

    def _hash(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self._hasher.update(chunk)


def _hash_held(fd: int, size: int, hasher: Any) -> None:
    offset = 0
    while offset < size and (chunk := os.pread(fd, min(4 * _CHUNK, size - offset), offset)):
        hasher.update(chunk)
        offset += len(chunk)


def _finish(store: Any, fd: int, part: Path, actual: str, digest: str) -> None:
    if actual != digest:
        part.unlink(missing_ok=True)
        raise InvalidArgument(
            f"The uploaded bytes hash to {actual}, not {digest}; nothing was "
            "stored. Upload the blob again."
        )
    if store.fsync:
        os.fsync(fd)  # on disk before the 201 says it is stored
    store.adopt_file(part, digest)
