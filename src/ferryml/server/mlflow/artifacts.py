"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``) over ferryml's
content-addressed artifact store. Paths are the ones the server hands out as artifact
URIs: ``EXP/RUN_ID/artifacts/PATH`` for a run's files (ferryml run artifacts, listed by
``ferry artifacts``), ``EXP/models/MODEL_ID/artifacts/PATH`` for a logged model's."""

from __future__ import annotations

import mimetypes
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import blake3
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ferryml.errors import InvalidArgument, NotFound
from ferryml.server.mlflow import _json as j
from ferryml.server.mlflow import _schemas as schemas
from ferryml.server.mlflow._errors import MlflowRoute
from ferryml.store.records import ArtifactRecord
from ferryml.store.sql_mlflow import SqlMlflowStore
from ferryml.tracking._validation import check_artifact_path

__all__ = ["children", "info_router", "locate", "router"]

router = APIRouter(route_class=MlflowRoute, tags=["mlflow"], responses=schemas.ERRORS)
info_router = APIRouter(route_class=MlflowRoute, tags=["mlflow"], responses=schemas.ERRORS)

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_CHUNK = 1 << 20
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_HELP = "ferry server keeps artifacts at EXP/RUN_ID/artifacts/PATH or EXP/models/ID/artifacts/PATH"


def locate(path: str) -> tuple[str, str, str]:
    """``(kind, id, relative path)`` of an artifact path: kind "run" or "model"."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and _RUN_ID.fullmatch(parts[1]) and parts[2] == "artifacts":
        kind, owner, rest = "run", parts[1], parts[3:]
    elif len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        kind, owner, rest = "model", parts[2], parts[4:]
    else:
        raise NotFound(f"No artifacts at {path!r}: {_HELP}.")
    relative = "/".join(rest)
    if relative:
        check_artifact_path(relative)
    return kind, owner, relative


def children(entries: Sequence[tuple[str, int]], prefix: str) -> list[dict[str, Any]]:
    """The files and folders right under ``prefix`` (none when it names a file)."""
    prefix = prefix.strip("/")
    if any(path == prefix for path, _ in entries):
        return []
    start = f"{prefix}/" if prefix else ""
    found: dict[str, dict[str, Any]] = {}
    for path, size in entries:
        if not path.startswith(start):
            continue
        name, slash, _ = path[len(start) :].partition("/")
        if slash:
            found.setdefault(name, {"path": name, "is_dir": True})
        else:
            found[name] = {"path": name, "is_dir": False, "file_size": size}
    return [found[k] for k in sorted(found)]


def _entries(request: Request, kind: str, owner: str, prefix: str) -> list[tuple[str, str, int]]:
    if kind == "run":
        listed = request.app.state.tracking.list_artifacts(owner, prefix)
        return [(a.path, a.digest, a.size) for a in listed]
    part = SqlMlflowStore(request.app.state.tracking)
    part.get_logged_model(owner)
    return part.list_model_files(owner, prefix)


@router.get("/artifacts", response_model=schemas.ArtifactList)
def list_artifacts(request: Request, path: str = "") -> Response:
    """``{"files": [...]}`` for a folder; ``{}`` for a file or nothing (the client tells
    files from folders this way)."""
    try:
        kind, owner, prefix = locate(path)
        entries = _entries(request, kind, owner, prefix)
    except NotFound:
        return j.ok()
    return j.ok({"files": children([(p, s) for p, _, s in entries], prefix)})


@router.get(
    "/artifacts/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"description": "The file's bytes", "content": _BYTES}},
)
def download(path: str, request: Request) -> Response:
    kind, owner, relative = locate(path)
    found = [e for e in _entries(request, kind, owner, relative) if e[0] == relative]
    if not relative or not found:
        raise NotFound(f"Artifact {path!r} not found.")
    _, digest, size = found[0]
    source = request.app.state.artifacts.open_blob(digest)
    media = mimetypes.guess_type(relative)[0] or "application/octet-stream"
    return StreamingResponse(
        _chunks(source), media_type=media, headers={"Content-Length": str(size)}
    )


def _chunks(source: Any) -> Iterator[bytes]:
    with source:
        while chunk := source.read(_CHUNK):
            yield chunk


@router.put(
    "/artifacts/{path:path}",
    response_class=Response,
    responses={200: {"description": "Stored; the body is empty"}},
    openapi_extra={"requestBody": {"required": True, "content": _BYTES}},
)
async def upload(path: str, request: Request) -> Response:
    """Store the body as the file at ``path``; the bytes stream to the artifact store."""
    kind, owner, relative = locate(path)
    if not relative:
        raise InvalidArgument(f"Artifact path {path!r} names no file: {_HELP}.")
    state = request.app.state
    if kind == "run":
        info = await run_in_threadpool(state.tracking.get_run_info, owner)
        if info.lifecycle_stage != "active":
            raise InvalidArgument(f"Run {owner} is deleted; restore it to log artifacts.")
    else:
        await run_in_threadpool(SqlMlflowStore(state.tracking).get_logged_model, owner)
    folder: Path = state.uploads
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"mlflow-{uuid.uuid4().hex}.part"
    hasher, size = blake3.blake3(), 0
    try:
        with open(part, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
                hasher.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = hasher.hexdigest()
        await run_in_threadpool(state.artifacts.adopt_file, part, digest)
    finally:
        part.unlink(missing_ok=True)
    if kind == "run":
        record = ArtifactRecord(owner, relative, digest, size)
        await run_in_threadpool(state.tracking.write_records, [record])
    else:
        part_store = SqlMlflowStore(state.tracking)
        await run_in_threadpool(part_store.add_model_file, owner, relative, digest, size)
    return Response(status_code=200)


@router.delete("/artifacts/{path:path}", response_model=schemas.Empty)
def delete(path: str, request: Request) -> Response:
    raise InvalidArgument(
        f"ferry server keeps what was logged: artifact {path!r} is not deleted. Delete the "
        "run instead (ferry runs delete)."
    )


@info_router.get("/server-info", response_model=schemas.ServerInfo)
def server_info() -> Response:
    """What the client probes before large transfers: plain PUT and GET here."""
    return j.ok(
        {
            "store_type": "ferryml",
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
        }
    )
