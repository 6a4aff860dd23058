"""The model server (FastAPI): one router per protocol (``ferryml.server.model``), one
table that turns ferryml errors into HTTP statuses, and no input that makes it answer
500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ferryml.errors import FerryError
from ferryml.server._body import BodyLimit
from ferryml.server._errors import error_response, status_of
from ferryml.server.model import feedback, ferry, health, inference, mlflow
from ferryml.serving.service import PredictionService

__all__ = ["MAX_BODY", "create_app"]

log = logging.getLogger("ferryml.server")

MAX_BODY = 10 * 1024 * 1024


def create_app(service: PredictionService, *, max_body: int = MAX_BODY) -> FastAPI:
    """The ASGI app around ``service`` (started on startup, closed on shutdown)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await service.close()

    app = FastAPI(title="ferryml model server", version="1", lifespan=lifespan)
    app.state.service = service
    app.state.max_body = max_body
    app.add_middleware(BodyLimit, max_body=max_body)
    for router in (health, ferry, inference, mlflow, feedback):
        app.include_router(router.router)
    _handle_errors(app, service)
    return app


def _handle_errors(app: FastAPI, service: PredictionService) -> None:
    metrics = service.metrics

    @app.exception_handler(FerryError)
    async def ferry_error(request: Request, exc: FerryError) -> Response:
        status = status_of(exc)
        metrics.error(request.url.path, status)
        return error_response(status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        metrics.error(request.url.path, 422)
        return error_response(422, f"Invalid request: {exc.errors()}", "InvalidArgument")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Reached only by a bug: logged with its traceback, answered without one.
        log.exception("unexpected error on %s", request.url.path)
        metrics.error(request.url.path, 500)
        return error_response(
            500, f"Internal error ({type(exc).__name__}); see the server log.", "InternalError"
        )
