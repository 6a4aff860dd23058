"""What both servers answer when something fails: one table from ferryml's error types to
HTTP statuses, and one JSON body, ``{"error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

import errno
from typing import Any

import orjson
from fastapi.responses import Response

from ferryml.errors import (
    AlreadyExists,
    Conflict,
    FerryError,
    IntegrityError,
    InvalidArgument,
    MissingExtra,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    Unauthenticated,
)

__all__ = ["STATUS", "disk_full", "error_response", "json_response", "status_of"]

# The one table from error type to HTTP status; the most specific type wins.
STATUS: tuple[tuple[type[FerryError], int], ...] = (
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (InvalidArgument, 422),
    (IntegrityError, 503),
    (StoreUnavailable, 503),
    (MissingExtra, 501),
    (FerryError, 400),
)


def status_of(error: FerryError) -> int:
    return next(code for kind, code in STATUS if isinstance(error, kind))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, kind: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="ferryml"'} if status == 401 else None
    return json_response({"error": {"type": kind, "message": message}}, status, headers)


def disk_full(exc: Exception) -> Response | None:
    """507 naming the cause when a write failed for want of space (a full disk, a quota, a
    file-size limit), which no client can fix by sending again at once; else None."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return None
    message = (
        f"The server's disk is full ({exc.strerror}): the write was not kept. Free space on the "
        "server's disk, then send again; an upload resumes from what the server holds."
    )
    return error_response(507, message, "StoreUnavailable")
