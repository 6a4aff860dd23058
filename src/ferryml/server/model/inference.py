"""The Open Inference Protocol (KServe V2) over REST."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.server import _protocols as protocols
from ferryml.server._errors import json_response
from ferryml.server.model._common import OBJECT_BODY, body_of, served, service_of

__all__ = ["router"]

router = APIRouter(tags=["open inference protocol"])


@router.get("/v2/health/live")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> Response:
    is_ready = service_of(request).ready
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@router.get("/v2/models/{name}")
async def metadata(name: str, request: Request) -> Response:
    loaded = served(service_of(request), name)
    signature = loaded.model.signature
    inputs = [
        {"name": c.name, "datatype": protocols.v2_type(c.type), "shape": [-1]}
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


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str, request: Request) -> Response:
    service = service_of(request)
    served(service, name)
    return json_response({"name": name, "ready": service.ready})


@router.post("/v2/models/{name}/infer", openapi_extra=OBJECT_BODY)
async def infer(name: str, request: Request) -> Response:
    service = service_of(request)
    body = await body_of(request)
    frame = protocols.frame_from_v2(body, served(service, name).columns)
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
