"""Blobs (artifacts and data files) streamed through the server in both directions with
bounded memory. An upload is a ``PUT`` at an offset: one cut short keeps what arrived,
and the client sends the rest from ``GET /uploads/{digest}``'s offset."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.server.team._render import render

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["blobs"])

_CHUNK = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=(\d+)-")


class BlobInfo(BaseModel):
    digest: str
    size: int


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
        _chunks(source, start),
        status_code=206 if range is not None else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


def _chunks(source: Any, start: int) -> Iterator[bytes]:
    with source:
        if start:
            source.seek(start)
        while chunk := source.read(_CHUNK):
            yield chunk


@router.get("/uploads/{digest}", response_model=UploadState)
def upload_state(digest: str, request: Request) -> Response:
    """How much of an upload the server holds, so a client resumes from there."""
    if _artifacts(request).size(_digest(digest)) is not None:
        return render(UploadState(digest=digest, offset=0, complete=True), UploadState)
    part = _part(request, digest)
    offset = part.stat().st_size if part.exists() else 0
    return render(UploadState(digest=digest, offset=offset, complete=False), UploadState)


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
    the offset reached; the blob is stored, checked against its digest, when complete."""
    store = _artifacts(request)
    if store.size(_digest(digest)) is not None:
        return render(UploadState(digest=digest, offset=upload_length, complete=True), UploadState)
    part = _part(request, digest)
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Another client sends the same bytes: wait for it; then they are stored.
            await run_in_threadpool(fcntl.flock, fd, fcntl.LOCK_EX)
            if store.size(digest) is not None:
                state = UploadState(digest=digest, offset=upload_length, complete=True)
                return render(state, UploadState)
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
        written = upload_offset
        async for chunk in request.stream():
            written += len(chunk)
            if written > upload_length:
                os.ftruncate(fd, 0)
                raise InvalidArgument(
                    f"The body runs past Upload-Length ({upload_length} bytes); send the size."
                )
            os.write(fd, chunk)
            hasher.update(chunk)
        if written < upload_length:
            return render(
                UploadState(digest=digest, offset=written, complete=False), UploadState, 202
            )
        await run_in_threadpool(_finish, store, part, hasher.hexdigest(), digest)
    finally:
        os.close(fd)
    return render(UploadState(digest=digest, offset=upload_length, complete=True), UploadState, 201)


def _hash_held(fd: int, size: int, hasher: Any) -> None:
    offset = 0
    while offset < size and (chunk := os.pread(fd, min(4 * _CHUNK, size - offset), offset)):
        hasher.update(chunk)
        offset += len(chunk)


def _finish(store: Any, part: Path, actual: str, digest: str) -> None:
    if actual != digest:
        part.unlink(missing_ok=True)
        raise InvalidArgument(
            f"The uploaded bytes hash to {actual}, not {digest}; nothing was "
            "stored. Upload the blob again."
        )
    store.adopt_file(part, digest)
