"""Building and running the team server."""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from ferryml._identity import current_user
from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument
from ferryml.server._body import BodyLimit
from ferryml.server._errors import disk_full, error_response, json_response, status_of
from ferryml.server.mlflow import include_mlflow, is_mlflow_path, mlflow_error
from ferryml.server.team import (
    alerts,
    blobs,
    datasets,
    decisions,
    deployments,
    monitors,
    pipelines,
    predictions,
    registry,
    review,
    run_files,
    schedules,
    tracking,
    users,
)
from ferryml.server.team._auth import Auth
from ferryml.store.entities import Role, User

__all__ = ["create_team_app", "serve_team"]

log = logging.getLogger("ferryml.server")

MAX_BODY = 64 * 1024 * 1024  # JSON bodies; blobs stream without a limit
_ENV = "FERRY_TEAM_SERVER_CONFIG"
SESSION_HOURS = 12.0  # a web UI session's life: a working day, then sign in again


def create_team_app(
    settings: Settings,
    *,
    auth: bool = True,
    signed_urls: bool = False,
    fsync: bool = False,
    session_hours: float = SESSION_HOURS,
) -> FastAPI:
    """The team server's ASGI app over the stores ``settings`` name. The stores open when
    the app starts; ``auth=False`` lets every request act as an admin named ``local``;
    ``signed_urls`` lets clients move blobs straight to and from an S3 artifact store;
    ``fsync`` puts an uploaded blob on disk before the server answers that it is stored;
    a web UI session signs out after ``session_hours``."""
    if not session_hours > 0:
        raise InvalidArgument(f"Session hours must be above 0; got {session_hours}.")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ferryml.serving.deployments import Deployments
        from ferryml.store.artifacts import ArtifactStore
        from ferryml.store.sql import SqlStore
        from ferryml.store.sql_alerts import SqlAlertStore
        from ferryml.store.sql_automation import SqlAutomationStore
        from ferryml.store.sql_data import SqlDatasetStore
        from ferryml.store.sql_monitors import SqlMonitorStore
        from ferryml.store.sql_pipelines import SqlStepCache
        from ferryml.store.sql_predictions import SqlPredictionStore
        from ferryml.store.sql_registry import SqlRegistryStore
        from ferryml.store.sql_request_errors import SqlRequestErrorStore
        from ferryml.store.sql_review import SqlReviewStore
        from ferryml.store.sql_schedules import SqlScheduleStore
        from ferryml.store.sql_users import SqlUserStore
        from ferryml.store.sql_views import SqlRunViews

        sql = SqlStore(settings.store_url).open()
        artifacts = ArtifactStore(settings.artifacts_url, fsync=fsync).open()
        app.state.tracking = sql
        app.state.registry = SqlRegistryStore(sql)
        app.state.run_views = SqlRunViews(sql)
        app.state.datasets = SqlDatasetStore(sql)
        app.state.step_cache = SqlStepCache(sql)
        app.state.schedules = SqlScheduleStore(sql)
        app.state.users = SqlUserStore(sql) if auth else None
        app.state.deployments = Deployments(settings)
        app.state.monitors = SqlMonitorStore(sql)
        app.state.alerts = SqlAlertStore(sql)
        app.state.predictions = SqlPredictionStore(sql)
        app.state.request_errors = SqlRequestErrorStore(sql)
        app.state.automation = SqlAutomationStore(sql)
        app.state.review = SqlReviewStore(sql)
        app.state.artifacts = artifacts
        app.state.uploads = artifacts.uploads_folder() or settings.home / "uploads"
        try:
            yield
        finally:
            app.state.deployments.close()
            sql.close()

    app = FastAPI(title="ferryml team server", version="1", lifespan=lifespan)
    app.state.users = None
    app.state.settings = settings
    app.state.signed_urls = signed_urls
    app.state.session_seconds = round(session_hours * 3600)
    exempt = ("/api/v1/blobs/", "/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/")
    app.add_middleware(BodyLimit, max_body=MAX_BODY, exempt=exempt)
    app.add_middleware(
        Auth,
        state=app.state,
        enabled=auth,
        anonymous=_local_admin(),
        render=_error_for,
        session_seconds=session_hours * 3600,
    )
    for router in (
        tracking,
        run_files,
        blobs,
        datasets,
        pipelines,
        schedules,
        registry,
        deployments,
        users,
        monitors,
        alerts,
        predictions,
        decisions,
        review,
    ):
        app.include_router(router.router)
    include_mlflow(app)
    from ferryml.ui import include_ui  # the UI's pages import the auth middleware
    from ferryml.ui._pages import error_page, is_page

    include_ui(app)

    @app.get("/health")
    def health() -> Response:
        return json_response({"status": "ok"})

    @app.exception_handler(FerryError)
    async def ferry_error(request: Request, exc: FerryError) -> Response:
        if is_page(request.url.path):
            return error_page(request, status_of(exc), str(exc))
        return error_response(status_of(exc), str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        if is_page(request.url.path) and request.method == "GET":  # e.g. /decisions/abc
            return error_page(request, 422, f"Invalid address: {problems}.")
        return error_response(422, f"Invalid request: {problems}.", "InvalidArgument")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if is_mlflow_path(request.url.path):
            return mlflow_error(exc)
        message = (
            f"No route {request.method} {request.url.path}; see /docs for the API."
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        if is_page(request.url.path) and request.method == "GET":
            return error_page(request, exc.status_code, f"No page {request.url.path}.")
        return error_response(exc.status_code, message, "NotFound")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        full = disk_full(exc)
        if full is not None:
            log.error("disk full on %s: %s", request.url.path, exc)
            return full
        # Reached only by a bug: logged with its traceback, answered without one.
        log.exception("unexpected error on %s", request.url.path)
        return error_response(
            500, f"Internal error ({type(exc).__name__}); see the server log.", "InternalError"
        )

    return app


def _error_for(path: str, error: FerryError) -> Response:
    """MLflow's error shape on MLflow's routes, ferryml's elsewhere."""
    if is_mlflow_path(path):
        return mlflow_error(error)
    return error_response(status_of(error), str(error), type(error).__name__)


def _local_admin() -> User:
    return User(current_user(), Role.ADMIN, 0)


def check_bind(host: str, port: int, auth: bool) -> None:
    """Refuse what would expose the stores: no auth beyond loopback, or a bad port."""
    if not 0 < port < 65536:
        raise InvalidArgument(f"Port {port} is out of range; use 1 to 65535.")
    if auth:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise InvalidArgument(
            f"--no-auth is allowed only on a loopback address, not {host!r}: anyone who can "
            "reach the server could change every record. Drop --no-auth and create tokens "
            "(ferry server user add NAME --role ROLE), or listen on 127.0.0.1."
        )


def app_from_env() -> FastAPI:
    """The app of a worker process, configured by ``serve_team`` through the environment."""
    config = json.loads(os.environ[_ENV])
    settings = Settings.resolve(
        home=config["home"], store=config["store"], artifacts=config["artifacts"]
    )
    app = create_team_app(
        settings,
        auth=config["auth"],
        signed_urls=config["signed_urls"],
        fsync=config["fsync"],
        session_hours=config["session_hours"],
    )
    # What importing and building made lives as long as the server: kept out of the
    # collector's passes, which a search's thousands of answer objects set off (a fifth of
    # a 1,000-run search's CPU).
    gc.freeze()
    return app


def serve_team(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    auth: bool = True,
    signed_urls: bool = False,
    fsync: bool = False,
    session_hours: float = SESSION_HOURS,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> None:
    """Run the team server until SIGTERM or Ctrl-C."""
    import uvicorn

    from ferryml.server._http import NoDelayHttp
    from ferryml.store.sql import SqlStore

    check_bind(host, port, auth)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise InvalidArgument("TLS needs both --ssl-certfile and --ssl-keyfile.")
    SqlStore(settings.store_url).open().close()  # migrate once, before workers race to
    os.environ[_ENV] = json.dumps(
        {
            "home": str(settings.home),
            "store": settings.store_url,
            "artifacts": settings.artifacts_url,
            "auth": auth,
            "signed_urls": signed_urls,
            "fsync": fsync,
            "session_hours": session_hours,
        }
    )
    uvicorn.run(
        "ferryml.server.team.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=NoDelayHttp,
        log_level="warning",
        access_log=False,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        timeout_graceful_shutdown=10,
    )
