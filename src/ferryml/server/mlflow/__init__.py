"""MLflow's REST API on the team server, so MLflow's own client (``MLFLOW_TRACKING_URI``
pointed at ``ferry server``) logs ferryml runs, artifacts and models: the tracking routes,
logged models and the registry under ``/api/2.0/mlflow/`` (and ``/ajax-api/2.0/``), the
artifact proxy under ``/api/2.0/mlflow-artifacts/``, and ``/api/3.0/mlflow/server-info``.
Every failure answers MLflow's JSON error; a route not served answers 404
``ENDPOINT_NOT_FOUND``, which the client reads as "this server has no such feature".
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Mount, Route, Router

from ferryml.server.mlflow._errors import PREFIXES, is_mlflow_path, mlflow_error, mlflow_response

__all__ = ["PREFIXES", "include_mlflow", "is_mlflow_path", "mlflow_error"]

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def include_mlflow(app: FastAPI) -> None:
    """Add MLflow's routes to ``app``, with a JSON answer for the ones not served. Each
    prefix is a mount ahead of the app's own routes: a request of MLflow's client is matched
    against MLflow's routes alone (matching it against all of the team server's took a
    quarter of a millisecond), and the team server's requests pass six prefixes."""
    from ferryml.server.mlflow import artifacts, models, tracking

    tracking_routes = [*tracking.router.routes, *models.router.routes]
    groups = {
        ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"): tracking_routes,
        ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts"): artifacts.router.routes,
        ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"): artifacts.info_router.routes,
    }
    mounts = []
    for bases, routes in groups.items():
        router = Router(routes=[*routes, Route("/{rest:path}", _not_served, methods=_METHODS)])
        mounts += [Mount(base, app=router) for base in bases]
    app.router.routes[:0] = mounts
    for prefix in PREFIXES:
        app.add_api_route(
            f"{prefix}{{rest:path}}", _not_served, methods=_METHODS, include_in_schema=False
        )


async def _not_served(request: Request) -> Response:
    return mlflow_response(
        404,
        "ENDPOINT_NOT_FOUND",
        f"ferry server does not serve MLflow's {request.method} {request.url.path}: it serves "
        "MLflow's tracking, logged-model, registry and artifact routes (README: MLflow).",
    )
