"""What the Open Inference Protocol asks of the server, over REST or gRPC alike: server and
model metadata, readiness, and infer with its outputs (``predict``; ``predict_proba`` as an
[n, k] matrix and ``predict_proba_<class>`` one per class, for classifiers); and the REST
form of a request and an answer, JSON or in the binary tensor data extension."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

import ferryml
from ferryml.errors import InvalidArgument, NotFound
from ferryml.server import _tensors as tensors
from ferryml.server._tensors import InferRequest, Requested, Tensor
from ferryml.serving.runtime import Loaded
from ferryml.serving.service import Answer, PredictionService

__all__ = [
    "COLUMN_DATATYPES",
    "EXTENSIONS",
    "Inferred",
    "infer",
    "loaded_of",
    "model_metadata",
    "output_specs",
    "pick",
    "request_from_rest",
    "rest_body",
    "server_metadata",
]

EXTENSIONS = ["binary_tensor_data", "model_repository"]
PROBA = "predict_proba"
COLUMN_DATATYPES = {"integer": "INT64", "float": "FP64", "boolean": "BOOL"}


@dataclass(frozen=True)
class Inferred:
    answer: Answer
    outputs: list[tuple[Tensor, bool]]  # each with whether it goes in binary
    request_id: str | None


def server_metadata() -> dict[str, Any]:
    return {"name": "ferryml", "version": ferryml.__version__, "extensions": EXTENSIONS}


def pick(services: Mapping[str, PredictionService], name: str) -> PredictionService:
    """The service of the model (or deployment) ``name``.

    Raises:
        NotFound: this server serves no such name.
    """
    found = services.get(name)
    if found is None:
        names = ", ".join(repr(n) for n in services)
        raise NotFound(f"Model {name!r} is not served here; this server serves {names}.")
    return found


def loaded_of(service: PredictionService, name: str, version: str | None = None) -> Loaded:
    """The model serving ``name`` (and ``version``, when named).

    Raises:
        NotFound: no such model or version here.
    """
    if name != service.endpoint:
        return loaded_of(pick({service.endpoint: service}, name), name, version)
    if version is None:
        return service.primary()
    loaded = service.route_of(_number(service, version)).served.current
    assert loaded is not None  # route_of names loaded routes only
    return loaded


def _number(service: PredictionService, version: str) -> int:
    if not version.isdigit():
        served = ", ".join(map(str, service.versions()))
        raise NotFound(f"Version {version!r} is not served here; served: {served}.")
    return int(version)


def output_specs(loaded: Loaded) -> list[dict[str, Any]]:
    """The outputs a model answers, as the metadata declares them."""
    specs = [{"name": "predict", "datatype": tensors.datatype_of(loaded.output), "shape": [-1]}]
    if loaded.classes is not None:
        specs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, len(loaded.classes)]})
        specs += [
            {"name": f"{PROBA}_{c}", "datatype": "FP64", "shape": [-1]} for c in loaded.classes
        ]
    return specs


def model_metadata(
    service: PredictionService, name: str, version: str | None = None
) -> dict[str, Any]:
    loaded = loaded_of(service, name, version)
    signature = loaded.model.signature
    versions = [str(v) for v in service.versions()] if version is None else [version]
    return {
        "name": name,
        "versions": versions,
        "platform": f"ferryml-{loaded.model.flavor}",
        "inputs": [
            {"name": c.name, "datatype": COLUMN_DATATYPES.get(c.type, "BYTES"), "shape": [-1]}
            for c in (signature.inputs if signature else ())
        ],
        "outputs": output_specs(loaded),
    }


async def infer(
    service: PredictionService,
    name: str,
    version: str | None,
    request: InferRequest,
    *,
    key: str | None = None,
    endpoint: str = "v2",
) -> Inferred:
    """Predict the request's inputs and build the outputs it asks for."""
    loaded = loaded_of(service, name, version)
    frame = tensors.frame_of(request.inputs, loaded.columns)
    asked = request.outputs or (Requested("predict"),)
    known = [s["name"] for s in output_specs(loaded)]
    for output in asked:
        if output.name not in known:
            raise InvalidArgument(
                f"Output {output.name!r} is not an output of model {name!r}; ask for one of "
                f"{', '.join(known)}."
            )
    answer = await service.predict(
        frame,
        key=key,
        endpoint=endpoint,
        version=None if version is None else int(version),
        proba=any(o.name.startswith(PROBA) for o in asked),
    )
    binary = [request.binary_output if o.binary is None else o.binary for o in asked]
    outputs = [_output(answer, o.name) for o in asked]
    return Inferred(answer, list(zip(outputs, binary, strict=True)), request.id)


def _output(answer: Answer, name: str) -> Tensor:
    assert answer.loaded is not None
    if name == "predict":
        dtype = answer.loaded.output
        try:
            values = np.asarray(answer.predictions, dtype=dtype)
        except (TypeError, ValueError):  # a missing value among numbers
            dtype, values = np.dtype(object), np.asarray(answer.predictions, dtype=object)
        return Tensor(name, tensors.datatype_of(dtype), values.shape, values.reshape(-1))
    matrix = np.asarray(answer.probabilities, dtype=np.float64)
    if name == PROBA:
        return Tensor(name, "FP64", matrix.shape, matrix.reshape(-1))
    classes = [f"{PROBA}_{c}" for c in answer.loaded.classes or ()]
    if name not in classes:  # a canary without this class
        raise InvalidArgument(f"Version {answer.version} gives no output {name!r}.")
    column = matrix[:, classes.index(name)]
    return Tensor(name, "FP64", column.shape, column)


# -- REST ------------------------------------------------------------------------------

_REQUEST_PARAMETERS = {"binary_data_output"}
_INPUT_PARAMETERS = {"binary_data_size"}
_OUTPUT_PARAMETERS = {"binary_data"}


def request_from_rest(body: bytes, header_length: str | None = None) -> InferRequest:
    """A REST infer request: JSON, or a JSON header of ``header_length`` bytes followed by
    the inputs' binary data, in the order of the inputs that declare ``binary_data_size``."""
    raw = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidArgument(
                f"Inference-Header-Content-Length is {header_length!r}; it must be the size "
                f"of the JSON header, at most the body's {len(body)} bytes."
            )
        body, raw = body[: int(header_length)], body[int(header_length) :]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidArgument(f"The body is not valid JSON: {e}.") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise InvalidArgument("An inference request needs 'inputs': a list of tensors.")
    parameters = _parameters(doc.get("parameters"), _REQUEST_PARAMETERS, "the request")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidArgument(f"The request's 'id' must be a string, not {request_id!r}.")
    inputs, at = [], 0
    for item in doc["inputs"]:
        given = item.get("parameters") if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        size = _parameters(given, _INPUT_PARAMETERS, f"input {name!r}").get("binary_data_size")
        chunk = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or at + size > len(raw):
                raise InvalidArgument(
                    f"Input {name!r} declares binary_data_size {size!r}, beyond the "
                    f"{len(raw) - at} bytes of binary data left in the body."
                )
            chunk, at = raw[at : at + size], at + size
        inputs.append(tensors.tensor_from_json(item, chunk))
    if at != len(raw):
        raise InvalidArgument(
            f"The body has {len(raw) - at} bytes of binary data that no input declares."
        )
    return InferRequest(
        request_id,
        tuple(inputs),
        _requested(doc.get("outputs")),
        _flag(parameters.get("binary_data_output", False), "binary_data_output"),
    )


def _parameters(given: Any, known: set[str], whose: str) -> Mapping[str, Any]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise InvalidArgument(f"The parameters of {whose} must be an object.")
    unknown = sorted(set(given) - known)
    if unknown:
        raise InvalidArgument(
            f"Parameter {unknown[0]!r} of {whose} is not one this server understands "
            f"({', '.join(sorted(known))}); remove it."
        )
    return given


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"Parameter {name!r} must be true or false, not {value!r}.")
    return value


def _requested(outputs: Any) -> tuple[Requested, ...]:
    if outputs is None:
        return ()
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidArgument("'outputs' must be a list of {\"name\": ...} objects.")
    out = []
    for o in outputs:
        given = _parameters(o.get("parameters"), _OUTPUT_PARAMETERS, f"output {o['name']!r}")
        binary = given.get("binary_data")
        out.append(Requested(o["name"], None if binary is None else _flag(binary, "binary_data")))
    return tuple(out)


def rest_body(name: str, inferred: Inferred) -> tuple[bytes, int | None]:
    """The answer's bytes, and the JSON header's length when outputs follow in binary."""
    answer = inferred.answer
    outputs: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for tensor, binary in inferred.outputs:
        if binary:
            data = tensor.raw()
            raw.append(data)
            outputs.append(
                {
                    "name": tensor.name,
                    "datatype": tensor.datatype,
                    "shape": list(tensor.shape),
                    "parameters": {"binary_data_size": len(data)},
                }
            )
        else:
            outputs.append(tensor.as_json())
    header = orjson.dumps(
        {
            "model_name": name,
            "model_version": str(answer.version),
            "id": inferred.request_id or answer.ids[0],
            "parameters": {"prediction_ids": ",".join(answer.ids)},
            "outputs": outputs,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not raw:
        return header, None
    return header + b"".join(raw), len(header)
