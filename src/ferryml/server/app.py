"""The model server (FastAPI): one router per protocol (``ferryml.server.model``), one
table that turns ferryml errors into HTTP statuses, each protocol's own error body, and
no input that makes it answer 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ferryml.errors import FerryError, InvalidArgument
from ferryml.server._access import AccessLog, RequestIds
from ferryml.server._body import BodyLimit
from ferryml.server._errors import error_response, json_response, status_of
from ferryml.server._overload import Overload
from ferryml.server.model import feedback, ferry, health, inference, mlflow
from ferryml.server.model import repository as repository_routes
from ferryml.server.model._openapi import openapi_of
from ferryml.serving.repository import ModelRepository
from ferryml.serving.service import CURRENT_REQUEST, PredictionService

if TYPE_CHECKING:
    from ferryml.serving.errorlog import RequestErrorLog

__all__ = ["MAX_BODY", "create_app", "protocol_error"]

log = logging.getLogger("ferryml.server")

MAX_BODY = 10 * 1024 * 1024
# The routes that predict: their errors are counted per deployment and route.
PREDICTING = frozenset(
    {
        "/v1/models/{name}/predict",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/invocations",
    }
)
_MLFLOW_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST"}


def create_app(
    service: PredictionService | Sequence[PredictionService],
    *,
    max_body: int = MAX_BODY,
    grpc_address: tuple[str, int] | None = None,
    max_queue: int | None = None,
    max_queue_wait_ms: float | None = None,
    repository: ModelRepository | None = None,
    access_log: AccessLog | None = None,
    request_errors: RequestErrorLog | None = None,
) -> FastAPI:
    """The ASGI app around ``service`` (or several, each under its own name, sharing one
    metrics registry), started on startup and closed on shutdown, with the gRPC service on
    ``grpc_address`` (host, port) beside it when given (ferryml[grpc]). Past ``max_queue``
    requests in flight, or ``max_queue_wait_ms`` of waiting, a POST is answered 503 with
    Retry-After (see ``_overload``). ``repository`` loads and unloads models while it runs
    (``/v2/repository``); without one, the models given can be listed and unloaded. Every
    request gets an ``X-Request-Id``, and a line in ``access_log`` when given; every
    prediction request answered with an error is counted in ``request_errors`` when given
    (opened by the caller, closed when the app stops)."""
    given = [service] if isinstance(service, PredictionService) else list(service)
    if repository is None:
        repository = ModelRepository(given[0].settings, {})
    services = repository.services  # the repository loads and unloads in this very dict
    services.update((s.endpoint, s) for s in given)
    if len(services) != len(given):
        raise InvalidArgument("Serve each model or deployment once: a name is given twice.")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if access_log is not None:
            access_log.open()
        for each in given:
            each.start()
        rpc = None
        if grpc_address is not None:
            from ferryml.server.rpc import start_grpc

            rpc = await start_grpc(
                services, *grpc_address, max_message=max_body, repository=repository
            )
        try:
            yield
        finally:
            if rpc is not None:
                await rpc.stop(grace=5)
            for each in {*given, *services.values()}:
                await each.close()
            if access_log is not None:
                access_log.close()
            if request_errors is not None:
                request_errors.close()

    app = FastAPI(title="ferryml model server", version="1", lifespan=lifespan)
    app.state.service, app.state.services = given[0], services
    app.state.repository, app.state.metrics = repository, given[0].metrics
    app.state.max_body = max_body
    app.state.request_errors = request_errors
    service = given[0]
    app.add_middleware(BodyLimit, max_body=max_body, respond=_refuse(app, service))
    if max_queue is not None or max_queue_wait_ms is not None:  # sheds before the app
        app.add_middleware(
            Overload,
            max_queue=max_queue,
            max_wait_ms=max_queue_wait_ms,
            respond=_refuse(app, service),
        )
    app.add_middleware(  # outermost: shed and refused requests get an id and a line too
        RequestIds, labels=lambda scope: labels_of(app, scope, service), access_log=access_log
    )
    routers = (health, ferry, inference, repository_routes, mlflow, feedback)
    for router in routers:
        app.include_router(router.router)
    app.state.routes = [route for router in routers for route in router.router.routes]
    _handle_errors(app, service)
    app.openapi = lambda: openapi_of(app, service)  # type: ignore[method-assign]
    return app


def protocol_error(path: str, status: int, message: str, kind: str) -> Response:
    """The error body of the protocol ``path`` belongs to: ``{"error": "..."}`` on the
    Open Inference Protocol, MLflow's ``{"error_code", "message"}`` on /invocations,
    ferryml's ``{"error": {"type", "message"}}`` elsewhere. Both peers say 400 where
    ferryml says 422."""
    if path == "/v2" or path.startswith("/v2/"):
        return json_response({"error": message}, 400 if status == 422 else status)
    if path == "/invocations":
        status = 400 if status == 422 else status
        code = _MLFLOW_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        return json_response({"error_code": code, "message": message}, status)
    return error_response(status, message, kind)


def labels_of(app: FastAPI, scope: Any, service: PredictionService) -> tuple[str, str]:
    """The route template and model name of a request, for metric labels: both from
    bounded sets (the app's routes, the served names), never the raw path."""
    route = scope.get("route")
    params = scope.get("path_params") or {}
    if route is None:
        for candidate in app.state.routes:
            match, child = candidate.matches(scope)
            if match is Match.FULL:
                route, params = candidate, child.get("path_params", {})
                break
    template = getattr(route, "path", "unmatched")
    name = params.get("name")
    model = "" if name is None else (name if name in app.state.services else "unknown")
    return template, model


def _failed(
    app: FastAPI, scope: Any, service: PredictionService, status: int, message: str
) -> None:
    """Count an error answer: in the metrics, and in the failed-request log when it
    answers a prediction request of a served name."""
    template, model = labels_of(app, scope, service)
    service.metrics.error(template, model, status)
    errors: RequestErrorLog | None = app.state.request_errors
    if errors is None or template not in PREDICTING or scope.get("method") != "POST":
        return
    services = app.state.services
    name = model or next(iter(services), "")  # /invocations answers with the first
    if name not in services:
        return  # a name not served here: no deployment of ours failed
    info = CURRENT_REQUEST.get()
    if info is not None and info.route:  # a route failed it (see PredictionService._run)
        errors.record(name, info.route, info.version or 0, status, message)
    else:  # refused before a route was chosen
        errors.record(name, "", 0, status, message)


def _refuse(app: FastAPI, service: PredictionService) -> Any:
    def respond(scope: Any, status: int, message: str, kind: str) -> Response:
        _failed(app, scope, service, status, message)
        return protocol_error(scope["path"], status, message, kind)

    return respond


def _handle_errors(app: FastAPI, service: PredictionService) -> None:
    def answer(request: Request, status: int, message: str, kind: str) -> Response:
        _failed(app, request.scope, service, status, message)
        return protocol_error(request.url.path, status, message, kind)

    @app.exception_handler(FerryError)
    async def ferry_error(request: Request, exc: FerryError) -> Response:
        return answer(request, status_of(exc), str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return answer(request, 422, f"Invalid request: {exc.errors()}", "InvalidArgument")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; see /docs for the routes."
        else:
            message = f"{request.method} {request.url.path}: {exc.detail}"
        return answer(request, exc.status_code, message, "HTTPError")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Reached only by a bug: logged with its traceback, answered without one.
        log.exception("unexpected error on %s", request.url.path)
        message = f"Internal error ({type(exc).__name__}); see the server log."
        return answer(request, 500, message, "InternalError")
