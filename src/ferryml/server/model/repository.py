"""The Open Inference Protocol's model repository extension (as Triton and KServe define
it): list the models this server serves or can load, load (or reload) and unload one."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import InvalidArgument
from ferryml.server._errors import json_response
from ferryml.server.model._common import read_body
from ferryml.serving.repository import ModelRepository

__all__ = ["router"]

router = APIRouter(tags=["model repository"])
INDEX_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "ready": {
                            "type": "boolean",
                            "description": "Only the models ready for inference.",
                        }
                    },
                }
            }
        },
    }
}


@router.post("/v2/repository/index", openapi_extra=INDEX_BODY)
async def index(request: Request) -> Response:
    """Every model this server serves or can load: name, version, state (READY or
    UNAVAILABLE) and reason."""
    ready = _ready_of(await read_body(request))
    loop = asyncio.get_running_loop()  # reads the store's deployments: off the event loop
    entries = await loop.run_in_executor(None, lambda: _repository(request).index(ready=ready))
    return json_response([e.to_dict() for e in entries])


@router.post("/v2/repository/models/{name}/load")
async def load(name: str, request: Request) -> Response:
    """Load (or reload) a model the server was started with, or a deployment of the store."""
    await _repository(request).load(name)
    return Response(status_code=200)


@router.post("/v2/repository/models/{name}/unload")
async def unload(name: str, request: Request) -> Response:
    """Stop serving a model: new requests are refused, those in flight finish."""
    await _repository(request).unload(name)
    return Response(status_code=200)


def _repository(request: Request) -> ModelRepository:
    repository: ModelRepository = request.app.state.repository
    return repository


def _ready_of(body: bytes) -> bool:
    import orjson

    if not body.strip():
        return False
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidArgument(f"The body is not valid JSON: {e}.") from e
    ready = parsed.get("ready", False) if isinstance(parsed, dict) else None
    if not isinstance(ready, bool):
        raise InvalidArgument(
            'The index request is an object with an optional boolean "ready", e.g. '
            f'{{"ready": true}}; got {parsed!r:.100}.'
        )
    return ready
