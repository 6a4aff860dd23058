"""Starting the model server: one process, or several behind one socket, each answering
with TCP_NODELAY set (see ``_http``)."""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI

from ferryml.config import Settings
from ferryml.errors import FerryError
from ferryml.server._http import NoDelayHttp
from ferryml.serving.service import BatchOptions, PredictionService

__all__ = ["NoDelayHttp", "app_from_env", "build_app", "serve"]

_ENV = "FERRY_SERVE_CONFIG"


def build_app(
    settings: Settings,
    target: str | Sequence[str] | None = None,
    *,
    package: str | None = None,
    deployment: str | Sequence[str] | None = None,
    batching: BatchOptions | None = None,
    log_predictions: bool = True,
    poll_seconds: float = 2.0,
    grpc_address: tuple[str, int] | None = None,
    max_queue: int | None = None,
    max_queue_wait_ms: float | None = None,
    access_log: str = "off",
) -> FastAPI:
    """The app serving models (``NAME@ALIAS``, ``NAME/VERSION``; several at once, each under
    its name), an exported package, or deployments' routes (each under its name), with an
    access log of JSON lines on stderr when ``access_log`` is ``"json"``."""
    from ferryml.server._access import AccessLog
    from ferryml.server._metrics import ServerMetrics
    from ferryml.server.app import create_app
    from ferryml.serving.repository import ModelRepository
    from ferryml.serving.runtime import ServedModel
    from ferryml.serving.service import RouteState

    log = errors = None
    if log_predictions:
        from ferryml.serving.errorlog import RequestErrorLog
        from ferryml.serving.predlog import PredictionLog

        log = PredictionLog(settings)  # opened below, once the models are loaded
        errors = RequestErrorLog(settings).open()  # its stores open once a request fails
    metrics = ServerMetrics()  # one registry: every model's series side by side

    def counted(service: PredictionService) -> PredictionService:
        """``service``, its shadows' failures counted with the answered requests' own."""
        if errors is not None:
            from ferryml.server._errors import status_of

            def failed(route: str, version: int, error: FerryError) -> None:
                errors.record(service.endpoint, route, version, status_of(error), str(error))

            service.on_shadow_failure = failed
        return service

    def deployment_named(name: str) -> PredictionService:
        from ferryml.serving.deployments import deployment_service

        return counted(
            deployment_service(
                settings,
                name,
                batching=batching,
                log=log,
                metrics=metrics,
                poll_seconds=poll_seconds,
            )
        )

    def model_named(ref: str | None) -> PredictionService:
        served = ServedModel(settings, ref, package=package, poll_seconds=poll_seconds)
        served.load()
        route = [RouteState("primary", served)]
        return PredictionService(
            settings, served.name, route, batching=batching, log=log, metrics=metrics
        )  # one route, no shadow

    services = [deployment_named(name) for name in _names(deployment)]
    builders: dict[str, Callable[[], PredictionService]] = {
        name: functools.partial(deployment_named, name) for name in _names(deployment)
    }
    refs: list[str | None] = list(_names(target)) or ([None] if package is not None else [])
    for ref in refs:
        services.append(model_named(ref))
        builders[services[-1].endpoint] = functools.partial(model_named, ref)
    repository = ModelRepository(
        settings,
        {},  # create_app fills it
        builders=builders,
        build_deployment=None if package is not None else deployment_named,
    )
    app = create_app(
        services,
        grpc_address=grpc_address,
        max_queue=max_queue,
        max_queue_wait_ms=max_queue_wait_ms,
        repository=repository,
        access_log=AccessLog() if access_log == "json" else None,
        request_errors=errors,
    )
    if log is not None:
        # Here, not before loading: its stores open a flush interval after this, so that
        # opening them is not in the way of the first answer; nothing is recorded before.
        log.open(background=True)
    # Everything loaded so far lives as long as the server: keep it out of the collector's
    # full passes, which otherwise stall requests for 100 ms and more. The collector was
    # off while loading (see ``serve``); a pass over the whole heap first would cost a
    # twentieth of the start to free what little garbage loading leaves.
    gc.freeze()
    gc.enable()
    return app


def _names(given: str | Sequence[str] | None) -> list[str]:
    if given is None:
        return []
    return [given] if isinstance(given, str) else list(given)


def app_from_env() -> FastAPI:
    """The app of a worker process, configured by ``serve`` through the environment."""
    gc.disable()  # until build_app has loaded everything (see serve)
    config = json.loads(os.environ[_ENV])
    settings = Settings.resolve(
        home=config["home"],
        store=config["store"],
        artifacts=config["artifacts"],
        cwd=config["root"],
    )
    batching = BatchOptions(**config["batching"]) if config["batching"] else None
    return build_app(
        settings,
        config["target"],
        package=config["package"],
        deployment=config["deployment"],
        batching=batching,
        log_predictions=config["log"],
        grpc_address=tuple(config["grpc"]) if config["grpc"] else None,
        max_queue=config["max_queue"],
        max_queue_wait_ms=config["max_queue_wait_ms"],
        access_log=config.get("access_log", "off"),
    )


def serve(
    settings: Settings,
    target: str | Sequence[str] | None = None,
    *,
    package: str | None = None,
    deployment: str | Sequence[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    batching: BatchOptions | None = None,
    log_predictions: bool = True,
    grpc_port: int | None = None,
    max_queue: int | None = None,
    max_queue_wait_ms: float | None = None,
    access_log: str = "json",
) -> None:
    """Run the server until SIGTERM or Ctrl-C: it stops accepting, answers the requests
    in flight and flushes the prediction log. With several workers, SIGHUP replaces them
    one at a time (each new one serving before its old one stops), failing no request.
    The port and address are checked first, and one line says what is served where.

    Raises:
        InvalidArgument: the port is out of range or in use, or the host is not this
            machine's.
    """
    # Importing and unpickling make millions of objects that live as long as the server:
    # collecting while they are made costs a tenth of the start. build_app turns it back on.
    gc.disable()
    try:
        import uvicorn

        from ferryml.server import _listen

        _listen.check_address(host, port)
        if grpc_port is not None:
            _listen.check_grpc(host, grpc_port, port)
        os.environ[_ENV] = json.dumps(
            {
                "home": str(settings.home),
                "store": settings.store_url,
                "artifacts": settings.artifacts_url,
                "root": str(settings.root),
                "target": target,
                "package": package,
                "deployment": deployment,
                "log": log_predictions,
                "batching": asdict(batching) if batching else None,
                "grpc": None if grpc_port is None else [host, grpc_port],
                "max_queue": max_queue,
                "max_queue_wait_ms": max_queue_wait_ms,
                "access_log": access_log,
            }
        )
        if workers == 1:
            # No worker to replace: SIGHUP stops gracefully, as SIGTERM (its default would
            # kill the server mid-request); a supervisor starts it again.
            signal.signal(signal.SIGHUP, lambda *_: signal.raise_signal(signal.SIGTERM))
            app: Any = app_from_env()  # load before listening: errors surface here, not later
            serving = [
                line
                for each in app.state.services.values()
                for line in _listen.describe_service(each)
            ]
        else:
            app = "ferryml.server.main:app_from_env"
            serving = _listen.describe_target(settings, _names(target), package, _names(deployment))
        print(_listen.startup_line(host, port, serving, grpc_port), flush=True)
        uvicorn.run(
            app,
            factory=workers > 1,
            host=host,
            port=port,
            workers=workers,
            http=NoDelayHttp,
            loop="uvloop",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
            # A new worker loads its models before it counts as ready (a rolling restart waits
            # for that): on a busy machine that takes longer than uvicorn's 5 s.
            timeout_worker_healthcheck=60,
            backlog=4096,  # uvicorn's 2048 refuses connections when thousands open at once
        )
    finally:
        gc.enable()  # on a failed start too: the caller may go on
