"""``inference.GRPCInferenceService``: the same models, checks and metrics as REST. Each
call turns its message into the protocol's request, asks ``_inference``, and turns the
answer back; ferryml's errors become gRPC status codes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
import numpy as np

from ferryml.errors import (
    FerryError,
    InvalidArgument,
    MissingExtra,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    Unauthenticated,
)
from ferryml.server import _inference as oip
from ferryml.server import _tensors as tensors
from ferryml.server._tensors import InferRequest, Requested, Tensor
from ferryml.server.rpc._messages import SERVICE, message
from ferryml.serving.repository import ModelRepository
from ferryml.serving.service import PredictionService

__all__ = ["start_grpc"]

log = logging.getLogger("ferryml.server")
_CODES = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (MissingExtra, grpc.StatusCode.UNIMPLEMENTED),
    (FerryError, grpc.StatusCode.INVALID_ARGUMENT),
)
# Which InferTensorContents field holds each datatype's values.
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


async def start_grpc(
    services: Mapping[str, PredictionService],
    host: str,
    port: int,
    *,
    max_message: int,
    repository: ModelRepository | None = None,
) -> grpc.aio.Server:
    """Listen on ``host:port`` for the models ``services`` serve (by name), and for the
    repository extension's calls when ``repository`` is given; the caller stops the
    returned server."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message),
        ]
    )
    server.add_generic_rpc_handlers((_handler(services, repository),))
    shown = f"[{host}]" if ":" in host else host
    server.add_insecure_port(f"{shown}:{port}")
    await server.start()
    return server


def _handler(
    services: Mapping[str, PredictionService], repository: ModelRepository | None
) -> grpc.GenericRpcHandler:
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "ServerLive": lambda _: _reply("ServerLiveResponse", live=True),
        "ServerReady": lambda _: _reply(
            "ServerReadyResponse", ready=all(s.ready for s in services.values())
        ),
        "ServerMetadata": lambda _: _reply("ServerMetadataResponse", **oip.server_metadata()),
        "ModelReady": lambda r: _model_ready(oip.pick(services, r.name), r),
        "ModelMetadata": lambda r: _model_metadata(oip.pick(services, r.name), r),
        "ModelInfer": lambda r: _infer(oip.pick(services, r.model_name), r),
    }
    if repository is not None:
        calls |= {
            "RepositoryIndex": lambda r: _index(repository, r),
            "RepositoryModelLoad": lambda r: _load(repository, r),
            "RepositoryModelUnload": lambda r: _unload(repository, r),
        }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(services, name, call),
            request_deserializer=message(f"{name}Request").FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )
        for name, call in calls.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def _guarded(
    services: Mapping[str, PredictionService],
    name: str,
    call: Callable[[Any], Awaitable[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    route = f"/{SERVICE}/{name}"
    metrics = next(iter(services.values())).metrics  # one registry; kept if all are unloaded

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        failed: Exception
        try:
            return await call(request)
        except FerryError as e:
            code = next(c for kind, c in _CODES if isinstance(e, kind))
            failed = e
        except Exception as e:  # noqa: BLE001 - a bug: logged, answered without a traceback
            log.exception("unexpected error on %s", route)
            code, failed = grpc.StatusCode.INTERNAL, e
        model_name = getattr(request, "model_name", "") or getattr(request, "name", "")
        known = "" if not model_name else (model_name if model_name in services else "unknown")
        metrics.error(route, known, code.name)
        message_text = (
            str(failed)
            if isinstance(failed, FerryError)
            else (f"Internal error ({type(failed).__name__}); see the server log.")
        )
        await context.abort(code, message_text)

    return handle


async def _index(repository: ModelRepository, request: Any) -> Any:
    loop = asyncio.get_running_loop()  # reads the store's deployments: off the event loop
    entries = await loop.run_in_executor(None, lambda: repository.index(ready=request.ready))
    return message("RepositoryIndexResponse")(models=[e.to_dict() for e in entries])


async def _load(repository: ModelRepository, request: Any) -> Any:
    await repository.load(request.model_name)
    return message("RepositoryModelLoadResponse")()


async def _unload(repository: ModelRepository, request: Any) -> Any:
    await repository.unload(request.model_name)
    return message("RepositoryModelUnloadResponse")()


async def _reply(kind: str, **fields: Any) -> Any:
    return message(kind)(**fields)


async def _model_ready(service: PredictionService, request: Any) -> Any:
    oip.loaded_of(service, request.name, request.version or None)
    return message("ModelReadyResponse")(ready=service.ready)


async def _model_metadata(service: PredictionService, request: Any) -> Any:
    meta = oip.model_metadata(service, request.name, request.version or None)
    return message("ModelMetadataResponse")(**meta)


async def _infer(service: PredictionService, request: Any) -> Any:
    oip.loaded_of(service, request.model_name, request.model_version or None)
    inferred = await oip.infer(
        service,
        request.model_name,
        request.model_version or None,
        _request_of(request),
        endpoint="grpc",
    )
    answer = inferred.answer
    response = message("ModelInferResponse")(
        model_name=request.model_name,
        model_version=str(answer.version),
        id=request.id,
    )
    response.parameters["prediction_ids"].string_param = ",".join(answer.ids)
    for tensor, _ in inferred.outputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        response.raw_output_contents.append(tensor.raw())
    return response


def _request_of(request: Any) -> InferRequest:
    if request.parameters:
        raise InvalidArgument(
            f"Parameter {sorted(request.parameters)[0]!r} of the request is not one this "
            "server understands over gRPC; remove it."
        )
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "send one per input, in order."
        )
    inputs = [_tensor(t, raw[i] if raw else None) for i, t in enumerate(request.inputs)]
    for output in request.outputs:
        if output.parameters:
            raise InvalidArgument(
                f"Parameter {sorted(output.parameters)[0]!r} of output {output.name!r} is not "
                "one this server understands; remove it."
            )
    return InferRequest(
        request.id or None, tuple(inputs), tuple(Requested(o.name) for o in request.outputs)
    )


def _tensor(given: Any, raw: bytes | None) -> Tensor:
    if given.datatype not in tensors.DATATYPES:
        raise InvalidArgument(
            f"Input {given.name!r} has datatype {given.datatype!r}; use one of "
            f"{', '.join(tensors.DATATYPES)}."
        )
    shape = tuple(int(d) for d in given.shape)
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"Input {given.name!r} has shape {list(shape)}; sizes are >= 0.")
    if raw is not None:
        return tensors.tensor_from_raw(given.name, given.datatype, shape, raw)
    values = list(getattr(given.contents, _CONTENTS[given.datatype]))
    if given.datatype == "BYTES":
        data = np.empty(len(values), dtype=object)
        data[:] = [v.decode("utf-8", "replace") for v in values]
    else:
        data = np.asarray(values, dtype=tensors.DATATYPES[given.datatype])
    expected = int(np.prod(shape)) if shape else 1
    if len(data) != expected:
        raise InvalidArgument(
            f"Input {given.name!r} has {len(data)} values; its shape {list(shape)} needs "
            f"{expected}."
        )
    return Tensor(given.name, given.datatype, shape, data)
