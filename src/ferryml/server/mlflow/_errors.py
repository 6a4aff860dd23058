"""MLflow's error shape, ``{"error_code": ..., "message": ...}``, with MLflow's statuses,
for every failure on the MLflow routes: ferryml's errors, bad bodies, unserved routes, and
bugs. The MLflow client retries 5xx answers for minutes, so only a store that is down (or
a bug) answers one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException

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

__all__ = ["PREFIXES", "MlflowRoute", "is_mlflow_path", "mlflow_error", "mlflow_response"]

log = logging.getLogger("ferryml.server")

# Where MLflow's clients send requests (one of its protos names "/api/2.0mlflow/...").
PREFIXES = ("/api/2.0", "/api/2.1", "/api/3.0", "/api/4.0", "/ajax-api/")

# ferryml's error types as MLflow's codes and statuses; the most specific type wins.
_CODES: tuple[tuple[type[FerryError], int, str], ...] = (
    (Unauthenticated, 401, "UNAUTHENTICATED"),
    (PermissionDenied, 403, "PERMISSION_DENIED"),
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (AlreadyExists, 400, "RESOURCE_ALREADY_EXISTS"),
    (Conflict, 400, "INVALID_STATE"),
    (InvalidArgument, 400, "INVALID_PARAMETER_VALUE"),
    (IntegrityError, 503, "TEMPORARILY_UNAVAILABLE"),
    (StoreUnavailable, 503, "TEMPORARILY_UNAVAILABLE"),
    (MissingExtra, 501, "NOT_IMPLEMENTED"),
    (FerryError, 400, "BAD_REQUEST"),
)


def is_mlflow_path(path: str) -> bool:
    return path.startswith(PREFIXES)


def mlflow_response(status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="ferryml"'} if status == 401 else None
    body = orjson.dumps({"error_code": code, "message": message})
    return Response(body, status, headers=headers, media_type="application/json")


def mlflow_error(error: Exception) -> Response:
    """The MLflow answer to any exception raised while serving an MLflow route."""
    if isinstance(error, FerryError):
        status, code = next((s, c) for kind, s, c in _CODES if isinstance(error, kind))
        return mlflow_response(status, code, str(error))
    if isinstance(error, RequestValidationError | ValidationError):
        problems = "; ".join(_problem(e) for e in error.errors())
        return mlflow_response(400, "INVALID_PARAMETER_VALUE", f"Invalid request: {problems}.")
    if isinstance(error, HTTPException):
        return mlflow_response(error.status_code, "BAD_REQUEST", str(error.detail))
    log.exception("unexpected error on an MLflow route", exc_info=error)
    return mlflow_response(
        500, "INTERNAL_ERROR", f"Internal error ({type(error).__name__}); see the server log."
    )


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"] if p not in ("body", "query"))
    if error["type"] == "json_invalid":
        return "the body is not valid JSON"
    return f"{where or 'body'}: {error['msg']}"


class MlflowRoute(APIRoute):
    """A route whose failures are answered in MLflow's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as e:  # noqa: BLE001 - every failure answers in MLflow's shape
                return mlflow_error(e)

        return answer
