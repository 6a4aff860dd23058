"""What every router of the model server needs: the service, the body, the served model."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from ferryml.errors import InvalidArgument, NotFound
from ferryml.serving.runtime import Loaded
from ferryml.serving.service import PredictionService

__all__ = [
    "OBJECT_BODY",
    "body_of",
    "read_body",
    "served",
    "service_named",
    "service_of",
    "services_of",
]

OBJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def services_of(request: Request) -> dict[str, PredictionService]:
    """Every model or deployment this server serves, by name, in the order given."""
    services: dict[str, PredictionService] = request.app.state.services
    return services


def service_of(request: Request) -> PredictionService:
    """The first one served: what routes without a model name (/invocations) answer with.

    Raises:
        NotFound: every model was unloaded (``/v2/repository``).
    """
    for service in services_of(request).values():
        return service
    raise NotFound(
        "No model is loaded on this server; load one with POST /v2/repository/models/NAME/load."
    )


def service_named(request: Request, name: str) -> PredictionService:
    from ferryml.server._inference import pick

    return pick(services_of(request), name)


async def read_body(request: Request) -> bytes:
    """The request's body, up to the server's limit."""
    data = await request.body()
    limit: int = request.app.state.max_body
    if len(data) > limit:
        raise InvalidArgument(f"The body is over the limit of {limit} bytes.")
    return data


async def body_of(request: Request) -> Any:
    """The request's JSON body, or a clear error."""
    data = await read_body(request)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise InvalidArgument(f"The body is not valid JSON: {e}.") from e


def served(request: Request, name: str) -> Loaded:
    """The primary model served as ``name``; NotFound for any other name."""
    return service_named(request, name).primary()
