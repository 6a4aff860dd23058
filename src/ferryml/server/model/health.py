"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import FerryError
from ferryml.server._errors import error_response, json_response
from ferryml.server.model._common import services_of
from ferryml.serving.service import PredictionService

__all__ = ["router"]

log = logging.getLogger("ferryml.server")
router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> Response:
    if all(s.ready for s in services_of(request).values()):
        return json_response({"status": "ready"})
    return error_response(503, "The model is still loading.", "NotReady")


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    services = list(services_of(request).values())
    metrics = services[0].metrics  # one registry for every model served
    loop = asyncio.get_running_loop()  # reads the store: off the event loop
    await loop.run_in_executor(None, metrics.refresh_monitors, _monitors_of(services))
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


def _monitors_of(
    services: list[PredictionService],
) -> Callable[[], dict[str, dict[str, float]]]:
    def read() -> dict[str, dict[str, float]]:
        from ferryml.monitoring.monitors import latest_metrics

        found: dict[str, dict[str, float]] = {}
        for service in services:
            try:
                found |= latest_metrics(service.settings, service.endpoint)
            except FerryError as e:  # the gauges wait; the request metrics still answer
                log.warning("could not read monitor results: %s", e)
        return found

    return read
