"""MLflow's REST API on the team server, so MLflow's own client (``MLFLOW_TRACKING_URI``
pointed at ``ferry server``) logs ferryml runs, artifacts and models: the tracking routes,
logged models and the registry under ``/api/2.0/mlflow/`` (and ``/ajax-api/2.0/``), the
artifact proxy under ``/api/2.0/mlflow-artifacts/``, and ``/api/3.0/mlflow/server-info``.
Every failure answers MLflow's JSON error; a route not served answers 404
``ENDPOINT_NOT_FOUND``, which the client reads as "this server has no such feature".
"""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.routing import Mount, Route, Router

from ferryml.server.mlflow._errors import PREFIXES, is_mlflow_path, mlflow_error, mlflow_response

__all__ = ["PREFIXES", "include_mlflow", "is_mlflow_path", "mlflow_error"]

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def include_mlflow(app: FastAPI) -> None:
    """Add MLflow's routes to ``app``, with a JSON answer for the ones not served. Each
    prefix is a mount ahead of the app's own routes: a request of MLflow's client is matched
    against MLflow's routes alone (matching it against all of the team server's took a
    quarter of a millisecond), and the team server's requests pass six prefixes. The app's
    OpenAPI document lists the mounted routes under their prefixes."""
    from ferryml.server.mlflow import artifacts, models, tracking

    groups = {
        ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"): [tracking.router, models.router],
        ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts"): [artifacts.router],
        ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"): [artifacts.info_router],
    }
    mounts = []
    for bases, routers in groups.items():
        routes = [route for router in routers for route in router.routes]
        router = Router(routes=[*routes, Route("/{rest:path}", _not_served, methods=_METHODS)])
        mounts += [Mount(base, app=router) for base in bases]
    app.router.routes[:0] = mounts
    for prefix in PREFIXES:
        app.add_api_route(
            f"{prefix}{{rest:path}}", _not_served, methods=_METHODS, include_in_schema=False
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # Copies of the mounted routes under their full paths, made when first asked
            # for: the document's alone (the server's start does not pay for them).
            documented = APIRouter()
            for bases, routers in groups.items():
                for base, served in itertools.product(bases, routers):
                    documented.include_router(served, prefix=base)
            # All that FastAPI.openapi() passes, so none of the app's settings drop out.
            # External docs are newer than fastapi's oldest version ferryml allows.
            external = getattr(app, "openapi_external_docs", None)
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                terms_of_service=app.terms_of_service,
                contact=app.contact,
                license_info=app.license_info,
                routes=[*app.routes, *documented.routes],
                webhooks=app.webhooks.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
                **({"external_docs": external} if external else {}),
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _not_served(request: Request) -> Response:
    return mlflow_response(
        404,
        "ENDPOINT_NOT_FOUND",
        f"ferry server does not serve MLflow's {request.method} {request.url.path}: it serves "
        "MLflow's tracking, logged-model, registry and artifact routes (README: MLflow).",
    )
