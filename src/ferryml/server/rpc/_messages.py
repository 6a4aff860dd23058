"""The messages of the Open Inference Protocol's gRPC service (package ``inference``), built
from a table at import: field names and numbers as the protocol's ``grpc_service.proto``
gives them, so any client of the protocol (Triton's, KServe's) talks to it. Built here
rather than generated with grpcio-tools: no build step, and no generated code tied to the
protobuf release that made it (generated modules refuse a runtime of another major)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["SERVICE", "message"]

SERVICE = "inference.GRPCInferenceService"
_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}
_PARAMETERS = "map"  # map<string, InferParameter>

# An input tensor of a request and an output tensor of a response have the same fields.
_TENSOR = [
    ("name", 1, "string", False),
    ("datatype", 2, "string", False),
    ("shape", 3, "int64", True),
    ("parameters", 4, _PARAMETERS, True),
    ("contents", 5, "InferTensorContents", False),
]
# message -> [(field, number, type, repeated)]; a type not in _TYPES names a message.
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", False)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", False)],
    "ModelReadyRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelReadyResponse": [("ready", 1, "bool", False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("extensions", 3, "string", True),
    ],
    "ModelMetadataRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelMetadataResponse": [
        ("name", 1, "string", False),
        ("versions", 2, "string", True),
        ("platform", 3, "string", False),
        ("inputs", 4, "ModelMetadataResponse.TensorMetadata", True),
        ("outputs", 5, "ModelMetadataResponse.TensorMetadata", True),
    ],
    "ModelMetadataResponse.TensorMetadata": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("parameters", 4, _PARAMETERS, True),
        ("inputs", 5, "ModelInferRequest.InferInputTensor", True),
        ("outputs", 6, "ModelInferRequest.InferRequestedOutputTensor", True),
        ("raw_input_contents", 7, "bytes", True),
    ],
    "ModelInferRequest.InferInputTensor": _TENSOR,
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string", False),
        ("parameters", 2, _PARAMETERS, True),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("parameters", 4, _PARAMETERS, True),
        ("outputs", 5, "ModelInferResponse.InferOutputTensor", True),
        ("raw_output_contents", 6, "bytes", True),
    ],
    "ModelInferResponse.InferOutputTensor": _TENSOR,
    # The model repository extension, as Triton's grpc_service.proto has it (a load's or
    # unload's ``parameters``, field 3, are not read).
    "RepositoryIndexRequest": [
        ("repository_name", 1, "string", False),
        ("ready", 2, "bool", False),
    ],
    "RepositoryIndexResponse": [("models", 1, "RepositoryIndexResponse.ModelIndex", True)],
    "RepositoryIndexResponse.ModelIndex": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("state", 3, "string", False),
        ("reason", 4, "string", False),
    ],
    "RepositoryModelLoadRequest": [
        ("repository_name", 1, "string", False),
        ("model_name", 2, "string", False),
    ],
    "RepositoryModelLoadResponse": [],
    "RepositoryModelUnloadRequest": [
        ("repository_name", 1, "string", False),
        ("model_name", 2, "string", False),
    ],
    "RepositoryModelUnloadResponse": [],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", True),
        ("int_contents", 2, "int32", True),
        ("int64_contents", 3, "int64", True),
        ("uint_contents", 4, "uint32", True),
        ("uint64_contents", 5, "uint64", True),
        ("fp32_contents", 6, "float", True),
        ("fp64_contents", 7, "double", True),
        ("bytes_contents", 8, "bytes", True),
    ],
}
_PARAMETER_CHOICES = [
    ("bool_param", 1, "bool"),
    ("int64_param", 2, "int64"),
    ("string_param", 3, "string"),
    ("double_param", 4, "double"),
    ("uint64_param", 5, "uint64"),
]


def _field(name: str, number: int, kind: str, repeated: bool, owner: str) -> Any:
    field = _F(name=name, number=number)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if kind == _PARAMETERS:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".inference.{owner}.ParametersEntry"
    elif kind in _TYPES:
        field.type = _TYPES[kind]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".inference.{kind}"
    return field


def _build() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="ferryml/open_inference_grpc.proto", package="inference", syntax="proto3"
    )
    made: dict[str, descriptor_pb2.DescriptorProto] = {}
    for path, fields in _MESSAGES.items():
        parent, _, name = path.rpartition(".")
        message = (made[parent].nested_type if parent else file.message_type).add(name=name)
        made[path] = message
        message.field.extend(_field(*spec, owner=path) for spec in fields)
        if any(kind == _PARAMETERS for _, _, kind, _ in fields):
            entry = message.nested_type.add(name="ParametersEntry")
            entry.options.map_entry = True
            entry.field.extend(
                [
                    _field("key", 1, "string", False, path),
                    _field("value", 2, "InferParameter", False, path),
                ]
            )
    parameter = file.message_type.add(name="InferParameter")
    parameter.oneof_decl.add(name="parameter_choice")
    for name, number, kind in _PARAMETER_CHOICES:
        choice = _field(name, number, kind, False, "InferParameter")
        choice.oneof_index = 0
        parameter.field.append(choice)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build())


def message(name: str) -> Any:
    """The message class ``inference.<name>``."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"inference.{name}"))
