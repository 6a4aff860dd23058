"""``ferry serve``: start the model server."""

from __future__ import annotations

import gc
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ferryml.cli._context import settings_of
from ferryml.config import Settings
from ferryml.errors import InvalidArgument


class AccessLogFormat(StrEnum):
    json = "json"
    off = "off"


def serve(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TARGET]...",
            help="NAME@ALIAS, NAME/VERSION or a deployment's name; several serve side by side, "
            "each under its own name.",
        ),
    ] = None,
    package: Annotated[
        Path | None,
        typer.Option(help="Serve an exported model folder (ferry deploy docker) instead."),
    ] = None,
    deployment: Annotated[
        list[str] | None,
        typer.Option(help="Serve a deployment's routes (ferry deploy create); repeatable."),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            envvar="FERRY_SERVE_HOST",
            help="The address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 (every "
            "interface: anyone who reaches it can predict and send feedback).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The HTTP port (1-65535).")] = 8080,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the Open Inference Protocol over gRPC on this port (ferryml[grpc])."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    batch: Annotated[
        bool,
        typer.Option(
            help="Gather the requests that arrive while the model predicts into one predict "
            "call, run off the event loop (--no-batch: each request predicts alone, on the "
            "event loop).",
        ),
    ] = True,
    max_batch: Annotated[int, typer.Option(help="Rows per batch at most.")] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            help="How long a batch waits for company when the model is free (0: it leaves at "
            "once, and batches form only from requests that arrived meanwhile)."
        ),
    ] = 0.0,
    log_predictions: Annotated[
        bool,
        typer.Option(
            "--log/--no-log",
            help="Log every prediction (for monitoring and feedback) and count failed requests.",
        ),
    ] = True,
    max_queue: Annotated[
        int | None,
        typer.Option(
            envvar="FERRY_SERVE_MAX_QUEUE",
            help="Answer 503 with Retry-After to a prediction that finds this many requests "
            "in flight in its worker (default: no limit).",
        ),
    ] = None,
    max_queue_wait_ms: Annotated[
        float | None,
        typer.Option(
            envvar="FERRY_SERVE_MAX_QUEUE_WAIT_MS",
            help="Answer 503 with Retry-After to a prediction that waited longer than this "
            "for its worker (default: no limit).",
        ),
    ] = None,
    all_deployments: Annotated[
        bool,
        typer.Option(
            "--all-deployments", help="Serve every deployment in the store (ferry deploy list)."
        ),
    ] = False,
    access_log: Annotated[
        AccessLogFormat,
        typer.Option(
            help="One JSON line per request on stderr (request id, method, route, status, "
            "duration, model and version), or off."
        ),
    ] = AccessLogFormat.json,
) -> None:
    """Serve models over HTTP: ferryml JSON, Open Inference Protocol (V2), MLflow
    /invocations, /metrics, /health, /ready and an OpenAPI document at /docs; gRPC too with
    --grpc-port. Several targets serve side by side, each under its own name."""
    # Collecting while the server's libraries are imported and its models unpickled costs
    # a tenth of the start (see ferryml.server.main.serve, which turns it back on).
    gc.disable()
    try:
        from ferryml.server._listen import check_address, check_grpc
        from ferryml.server.main import serve as run
        from ferryml.serving.service import BatchOptions

        named = bool(targets or deployment or all_deployments)
        if named == (package is not None):  # --package serves alone
            raise InvalidArgument(
                "Name what to serve: NAME@ALIAS, --package DIR, --deployment NAME or "
                "--all-deployments."
            )
        if workers < 1 or max_batch < 1 or max_wait_ms < 0:
            raise InvalidArgument(
                "--workers and --max-batch must be at least 1, --max-wait-ms >= 0."
            )
        if max_queue is not None and max_queue < 1:
            raise InvalidArgument(f"--max-queue {max_queue}: give at least 1 (or leave it out).")
        if max_queue_wait_ms is not None and not max_queue_wait_ms > 0:
            raise InvalidArgument(
                f"--max-queue-wait-ms {max_queue_wait_ms:g}: give a number of milliseconds above 0."
            )
        check_address(host, port)  # before anything is opened or loaded
        if grpc_port is not None:
            check_grpc(host, grpc_port, port)
        settings = settings_of(ctx)
        models: list[str] = []
        deployments = list(deployment or [])
        if all_deployments:
            deployments += [n for n in _created_deployments(settings) if n not in deployments]
        for target in targets or []:
            named = "@" not in target and "/" not in target and _is_deployment(settings, target)
            (deployments if named else models).append(target)
        run(
            settings,
            models,
            package=str(package) if package else None,
            deployment=deployments,
            host=host,
            port=port,
            workers=workers,
            batching=BatchOptions(max_batch, max_wait_ms) if batch else None,
            log_predictions=log_predictions,
            grpc_port=grpc_port,
            max_queue=max_queue,
            max_queue_wait_ms=max_queue_wait_ms,
            access_log=access_log.value,
        )

    finally:
        gc.enable()  # on a failed start too (the in-process CLI of the tests goes on)


def _created_deployments(settings: Settings) -> list[str]:
    from ferryml.serving.deployments import Deployments

    manager = Deployments(settings)
    try:
        names = sorted(name for name, _ in manager.store.list_deployments())
    finally:
        manager.close()
    if not names:
        raise InvalidArgument(
            "--all-deployments: the store has no deployments; create one with "
            "`ferry deploy create NAME --model MODEL --version N`."
        )
    return names


def _is_deployment(settings: Settings, name: str) -> bool:
    from ferryml.errors import NotFound
    from ferryml.serving.deployments import Deployments

    manager = Deployments(settings)
    try:
        manager.get(name)
        return True
    except NotFound:
        return False
    finally:
        manager.close()
