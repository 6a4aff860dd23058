"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import FerryError
from ferryml.server._errors import error_response, json_response
from ferryml.server._metrics import ServerMetrics, StoreReadings
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
    metrics: ServerMetrics = request.app.state.metrics  # one registry for every model served
    metrics.loaded_models(
        (service.endpoint, route.name, loaded.version, loaded.memory)
        for service in services
        for route in service.routes
        if (loaded := route.served.current) is not None
    )
    loop = asyncio.get_running_loop()  # reads the store: off the event loop
    await loop.run_in_executor(None, metrics.refresh_store, _readings_of(services))
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


def _readings_of(services: list[PredictionService]) -> Callable[[], StoreReadings]:
    def read() -> StoreReadings:
        from ferryml.automation.api import list_decisions
        from ferryml.monitoring.monitors import latest_windows

        found = StoreReadings()
        if not services:
            return found
        for service in services:
            try:
                windows = latest_windows(service.settings, service.endpoint)
            except FerryError as e:  # the gauges wait; the request metrics still answer
                log.warning("could not read monitor results: %s", e)
                continue
            for name, status in windows.items():
                found.monitors[service.endpoint, name] = (
                    status.window_end,
                    status.window_seconds,
                    status.metrics,
                )
        served = {service.endpoint for service in services}
        try:
            open_now = list_decisions(services[0].settings, open_only=True, limit=1000)
        except FerryError as e:
            log.warning("could not read decisions: %s", e)
            return found
        for decision in open_now:
            if decision.deployment in served:
                key = (decision.deployment, decision.policy, decision.state)
                found.decisions[key] = found.decisions.get(key, 0) + 1
        return found

    return read
