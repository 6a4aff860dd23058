"""The Open Inference Protocol (KServe V2) over REST: server and model metadata, health,
readiness and infer, per model and per version, JSON or binary tensors."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.server import _inference as oip
from ferryml.server._errors import json_response
from ferryml.server.model._common import read_body, service_named, services_of

__all__ = ["router"]

router = APIRouter(tags=["open inference protocol"])
_HEADER = "inference-header-content-length"
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "A JSON header of Inference-Header-Content-Length bytes, then "
                "the inputs' binary data (the binary tensor data extension).",
            },
        },
    }
}


@router.get("/v2")
async def server_metadata() -> Response:
    return json_response(oip.server_metadata())


@router.get("/v2/health/live")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> Response:
    is_ready = all(s.ready for s in services_of(request).values())
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
async def metadata(name: str, request: Request, version: str | None = None) -> Response:
    return json_response(oip.model_metadata(service_named(request, name), name, version))


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_ready(name: str, request: Request, version: str | None = None) -> Response:
    service = service_named(request, name)
    oip.loaded_of(service, name, version)
    return json_response({"name": name, "ready": service.ready})


@router.post("/v2/models/{name}/infer", openapi_extra=INFER_BODY)
@router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=INFER_BODY)
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    service = service_named(request, name)
    oip.loaded_of(service, name, version)  # an unknown model is 404 whatever the body
    inferred = await oip.infer(
        service,
        name,
        version,
        oip.request_from_rest(await read_body(request), request.headers.get(_HEADER)),
        key=request.headers.get("x-ferry-key"),
    )
    body, header_length = oip.rest_body(name, inferred)
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )
