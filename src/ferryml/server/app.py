"""The model server (FastAPI). Handlers parse, call the prediction service, render; one
table turns ferryml errors into HTTP statuses, and no input makes it answer 500."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ferryml.errors import FerryError, InvalidArgument, NotFound
from ferryml.server import _protocols as protocols
from ferryml.server._body import BodyLimit
from ferryml.server._errors import error_response, json_response, status_of
from ferryml.server._metrics import ServerMetrics
from ferryml.serving.explain import explain_row
from ferryml.serving.service import PredictionService

__all__ = ["create_app"]

log = logging.getLogger("ferryml.server")

MAX_BODY = 10 * 1024 * 1024
_OBJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def create_app(service: PredictionService, *, max_body: int = MAX_BODY) -> FastAPI:
    """The ASGI app around ``service`` (started on startup, closed on shutdown)."""
    metrics: ServerMetrics = service.metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await service.close()

    app = FastAPI(title="ferryml model server", version="1", lifespan=lifespan)
    app.state.service = service

    app.add_middleware(BodyLimit, max_body=max_body)

    @app.exception_handler(FerryError)
    async def ferryerror_response(request: Request, exc: FerryError) -> Response:
        status = status_of(exc)
        metrics.error(request.url.path, status)
        return error_response(status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def validationerror_response(request: Request, exc: RequestValidationError) -> Response:
        metrics.error(request.url.path, 422)
        return error_response(422, f"Invalid request: {exc.errors()}", "InvalidArgument")

    async def body_of(request: Request) -> Any:
        data = await request.body()
        if len(data) > max_body:
            raise InvalidArgument(f"The body is over the limit of {max_body} bytes.")
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise InvalidArgument(f"The body is not valid JSON: {e}.") from e

    def served(name: str) -> Any:
        if name != service.endpoint:
            raise NotFound(
                f"Model {name!r} is not served here; this server serves {service.endpoint!r}."
            )
        return service.primary()

    # -- health --------------------------------------------------------------------------

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        if service.ready:
            return json_response({"status": "ready"})
        return error_response(503, "The model is still loading.", "NotReady")

    def monitor_results() -> dict[str, dict[str, float]]:
        from ferryml.monitoring.monitors import latest_metrics

        try:
            return latest_metrics(service.settings, service.endpoint)
        except FerryError as e:  # the gauges wait; the request metrics still answer
            log.warning("could not read monitor results: %s", e)
            return {}

    @app.get("/metrics")
    async def prometheus() -> Response:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, metrics.refresh_monitors, monitor_results)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    # -- ferryml's own JSON --------------------------------------------------------------

    @app.get("/v1/models")
    async def models() -> Response:
        loaded = service.primary()
        return json_response(
            {
                "models": [
                    {"name": service.endpoint, "model": loaded.name, "version": loaded.version}
                ]
            }
        )

    @app.post("/v1/models/{name}/predict", openapi_extra=_OBJECT_BODY)
    async def predict(name: str, request: Request) -> Response:
        frame = protocols.frame_from_ferry(await body_of(request), served(name).columns)
        answer = await service.predict(frame, key=request.headers.get("x-ferry-key"), endpoint="v1")
        return json_response(
            {
                "model": answer.model,
                "version": answer.version,
                "route": answer.route,
                "ids": answer.ids,
                "predictions": answer.predictions,
            }
        )

    @app.post("/v1/models/{name}/explain", openapi_extra=_OBJECT_BODY)
    async def explain(name: str, request: Request) -> Response:
        """One row's output split into per-feature SHAP contributions (ferryml[shap])."""
        loaded = served(name)
        frame = protocols.frame_from_ferry(await body_of(request), loaded.columns)
        loop = asyncio.get_running_loop()  # seconds of CPU: off the event loop
        explanation = await loop.run_in_executor(None, explain_row, loaded.model, frame)
        return json_response(
            {"model": loaded.name, "version": loaded.version, **explanation.to_dict()}
        )

    # -- Open Inference Protocol (KServe V2) ---------------------------------------------

    @app.get("/v2/health/live")
    async def v2_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready")
    async def v2_ready() -> Response:
        return json_response({"ready": service.ready}, 200 if service.ready else 503)

    @app.get("/v2/models/{name}")
    async def v2_metadata(name: str) -> Response:
        loaded = served(name)
        signature = loaded.model.signature
        inputs = [
            {"name": c.name, "datatype": _v2_type(c.type), "shape": [-1]}
            for c in (signature.inputs if signature else ())
        ]
        return json_response(
            {
                "name": name,
                "versions": [str(loaded.version)],
                "platform": f"ferryml-{loaded.model.flavor}",
                "inputs": inputs,
                "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
            }
        )

    @app.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> Response:
        served(name)
        return json_response({"name": name, "ready": service.ready})

    @app.post("/v2/models/{name}/infer", openapi_extra=_OBJECT_BODY)
    async def v2_infer(name: str, request: Request) -> Response:
        body = await body_of(request)
        frame = protocols.frame_from_v2(body, served(name).columns)
        answer = await service.predict(frame, key=request.headers.get("x-ferry-key"), endpoint="v2")
        request_id = body.get("id") if isinstance(body.get("id"), str) else None
        return json_response(
            {
                "model_name": name,
                "model_version": str(answer.version),
                "id": request_id or answer.ids[0],
                "outputs": [protocols.v2_output("predict", answer.predictions)],
                "parameters": {"prediction_ids": answer.ids},
            }
        )

    # -- MLflow scoring ------------------------------------------------------------------

    @app.post("/invocations", openapi_extra=_OBJECT_BODY)
    async def invocations(request: Request) -> Response:
        frame = protocols.frame_from_mlflow(await body_of(request), service.primary().columns)
        answer = await service.predict(
            frame, key=request.headers.get("x-ferry-key"), endpoint="invocations"
        )
        return json_response({"predictions": answer.predictions})

    # -- feedback ------------------------------------------------------------------------

    @app.post("/v1/feedback", openapi_extra=_OBJECT_BODY)
    async def feedback(request: Request) -> Response:
        body = await body_of(request)
        items = body.get("feedback", body) if isinstance(body, dict) else body
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and "prediction_id" in i and "label" in i for i in items
        ):
            raise InvalidArgument('Send {"prediction_id": ..., "label": ...} or a list of them.')
        from ferryml.predictions import record_feedback

        if service.log is not None:
            # So predictions answered just now can take their labels; off the event loop.
            await asyncio.get_running_loop().run_in_executor(None, service.log.flush)
        report = record_feedback(
            [(str(i["prediction_id"]), i["label"]) for i in items], settings=service.settings
        )
        return json_response(
            {
                "accepted": report.accepted,
                "updated": report.updated,
                "unknown_ids": report.unknown_ids,
            }
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Reached only by a bug: logged with its traceback, answered without one.
        log.exception("unexpected error on %s", request.url.path)
        metrics.error(request.url.path, 500)
        return error_response(
            500, f"Internal error ({type(exc).__name__}); see the server log.", "InternalError"
        )

    return app


def _v2_type(kind: str) -> str:
    return {"integer": "INT64", "float": "FP64", "boolean": "BOOL"}.get(kind, "BYTES")
