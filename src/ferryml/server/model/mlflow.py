"""MLflow's scoring format on ``/invocations``: JSON (dataframe_split, dataframe_records,
instances, inputs; params) or CSV, answered ``{"predictions": [...]}``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.server import _protocols as protocols
from ferryml.server._errors import json_response
from ferryml.server.model._common import OBJECT_BODY, read_body, service_of

__all__ = ["router"]

router = APIRouter(tags=["mlflow"])


@router.post("/invocations", openapi_extra=OBJECT_BODY)
async def invocations(request: Request) -> Response:
    service = service_of(request)
    frame = protocols.frame_from_mlflow_body(
        await read_body(request), request.headers.get("content-type"), service.primary().columns
    )
    answer = await service.predict(
        frame, key=request.headers.get("x-ferry-key"), endpoint="invocations"
    )
    return json_response({"predictions": answer.predictions})
