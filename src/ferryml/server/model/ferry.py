"""ferryml's own JSON: ``/v1/models``, predict and explain."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.server import _protocols as protocols
from ferryml.server._errors import json_response
from ferryml.server.model._common import (
    OBJECT_BODY,
    body_of,
    served,
    service_named,
    services_of,
)
from ferryml.serving.explain import explain_row

__all__ = ["router"]

router = APIRouter(tags=["ferryml"])


@router.get("/v1/models")
async def models(request: Request) -> Response:
    listed = [
        {"name": name, "model": loaded.name, "version": loaded.version}
        for name, loaded in ((n, s.primary()) for n, s in services_of(request).items())
    ]
    return json_response({"models": listed})


@router.post("/v1/models/{name}/predict", openapi_extra=OBJECT_BODY)
async def predict(name: str, request: Request) -> Response:
    service = service_named(request, name)
    frame = protocols.frame_from_ferry(await body_of(request), service.primary().columns)
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


@router.post("/v1/models/{name}/explain", openapi_extra=OBJECT_BODY)
async def explain(name: str, request: Request) -> Response:
    """One row's output split into per-feature SHAP contributions (ferryml[shap])."""
    loaded = served(request, name)
    frame = protocols.frame_from_ferry(await body_of(request), loaded.columns)
    loop = asyncio.get_running_loop()  # seconds of CPU: off the event loop
    explanation = await loop.run_in_executor(None, explain_row, loaded.model, frame)
    return json_response({"model": loaded.name, "version": loaded.version, **explanation.to_dict()})
