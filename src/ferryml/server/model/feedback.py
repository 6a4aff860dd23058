"""``POST /v1/feedback``: true labels for served predictions, joined by prediction id;
over a team server's store, with a writer's token (``_auth``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import InvalidArgument
from ferryml.server._errors import json_response
from ferryml.server.model._auth import writer_settings
from ferryml.server.model._common import OBJECT_BODY, body_of, service_of

__all__ = ["router"]

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", openapi_extra=OBJECT_BODY)
async def feedback(request: Request) -> Response:
    from ferryml.serving.predictions import record_feedback

    service = service_of(request)
    settings = await writer_settings(service.settings, request.headers.get("authorization"))
    pairs = _pairs(await body_of(request))
    if service.log is not None:
        # So predictions answered just now can take their labels; off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, service.log.flush)
    report = record_feedback(pairs, settings=settings)
    return json_response(
        {"accepted": report.accepted, "updated": report.updated, "unknown_ids": report.unknown_ids}
    )


def _pairs(body: object) -> list[tuple[str, object]]:
    items = body.get("feedback", body) if isinstance(body, dict) else body
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and "prediction_id" in i and "label" in i for i in items
    ):
        raise InvalidArgument('Send {"prediction_id": ..., "label": ...} or a list of them.')
    return [(str(i["prediction_id"]), i["label"]) for i in items]
