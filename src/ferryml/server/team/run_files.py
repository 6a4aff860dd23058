"""A run's artifact files as a browser shows them: the bytes with their media type, and the
first rows of a table."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ferryml.errors import InvalidArgument, NotFound
from ferryml.server._errors import json_response
from ferryml.server.team._schemas import TablePreview
from ferryml.store.entities import ArtifactEntry

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tracking"])
_CHUNK = 1 << 20
# Shown as themselves; anything else is sent as bytes to download.
_INLINE = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "text/html")
_TEXT = (".txt", ".log", ".md", ".json", ".yaml", ".yml", ".csv", ".tsv", ".py", ".toml", ".cfg")
# An artifact's HTML or SVG runs in an opaque origin: no cookie, no API, no parent page.
_SANDBOX = "sandbox allow-scripts; default-src 'self' 'unsafe-inline' data: blob:"


def _entry(request: Request, run_id: str, path: str) -> ArtifactEntry:
    found = [e for e in request.app.state.tracking.list_artifacts(run_id, path) if e.path == path]
    if not found:
        raise NotFound(
            f"Run {run_id} has no artifact {path!r}. See GET /api/v1/runs/{run_id}/artifacts."
        )
    return found[0]


@router.get(
    "/runs/{run_id}/file",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def artifact_file(run_id: str, path: str, request: Request) -> Response:
    """An artifact's bytes with the media type of its name, for previews; HTML and SVG
    are sandboxed."""
    entry = await run_in_threadpool(_entry, request, run_id, path)
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if path.endswith(_TEXT):
        kind = "application/json" if path.endswith(".json") else "text/plain; charset=utf-8"
    headers = {
        "Content-Length": str(entry.size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _SANDBOX,
        "Content-Disposition": "inline"
        if kind.startswith(_INLINE + ("text/", "application/json"))
        else "attachment",
    }
    source = request.app.state.artifacts.open_blob(entry.digest)
    return StreamingResponse(_chunks(source), media_type=kind, headers=headers)


def _chunks(source: Any) -> Iterator[bytes]:
    with source:
        while chunk := source.read(_CHUNK):
            yield chunk


@router.get("/runs/{run_id}/table", response_model=TablePreview)
def artifact_table(
    run_id: str,
    path: str,
    request: Request,
    rows: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The first ``rows`` rows of a CSV or Parquet artifact, read without loading it all."""
    from ferryml.data.preview import head_rows

    entry = _entry(request, run_id, path)
    if not path.endswith((".csv", ".parquet", ".pq", ".tsv")):
        raise InvalidArgument(f"{path!r} is not a table: previews read .csv, .tsv and .parquet.")
    with request.app.state.artifacts.open_blob(entry.digest) as source:
        columns, values = head_rows(source, path, rows)
    return json_response({"columns": columns, "rows": values})
