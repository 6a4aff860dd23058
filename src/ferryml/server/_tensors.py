"""Tensors of the Open Inference Protocol, apart from how they travel: datatypes, JSON
data, the binary tensor data extension (raw little-endian bytes after a JSON header), and
the turn from input tensors into a model's frame. REST and gRPC both use them."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument

__all__ = [
    "DATATYPES",
    "InferRequest",
    "Requested",
    "Tensor",
    "datatype_of",
    "decode_bytes",
    "encode_bytes",
    "frame_of",
    "tensor_from_json",
    "tensor_from_raw",
]

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_KINDS = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}


@dataclass(frozen=True)
class Tensor:
    """A named tensor: its values flat (row-major), its shape and datatype."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def raw(self) -> bytes:
        """The binary tensor data extension's bytes of this tensor."""
        if self.datatype == "BYTES":
            return encode_bytes(self.data)
        return np.ascontiguousarray(
            self.data, dtype=DATATYPES[self.datatype].newbyteorder("<")
        ).tobytes()

    def as_json(self) -> dict[str, Any]:
        data = self.data.tolist()
        if self.datatype == "BYTES":
            data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data]
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "data": data,
        }


@dataclass(frozen=True)
class Requested:
    """An output the request names; ``binary`` None means as the request says overall."""

    name: str
    binary: bool | None = None


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[Requested, ...] = ()  # none named: the default output
    binary_output: bool = False  # every output in binary unless it says otherwise


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The protocol's datatype for values of ``dtype`` as the server answers them."""
    return _KINDS.get(dtype.kind, "BYTES")


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidArgument(
            f"Input {name!r} has shape {shape!r}; a shape is a list of sizes, e.g. [2, 30]."
        )
    return tuple(shape)


def _datatype(name: str, datatype: Any) -> str:
    if datatype not in DATATYPES:
        raise InvalidArgument(
            f"Input {name!r} has datatype {datatype!r}; use one of {', '.join(DATATYPES)}."
        )
    return str(datatype)


def tensor_from_json(tensor: Any, raw: bytes | None = None) -> Tensor:
    """An input tensor of a JSON request; ``raw`` is its binary data, when sent so."""
    if not isinstance(tensor, Mapping) or not isinstance(tensor.get("name"), str):
        raise InvalidArgument(
            "Each input needs 'name', 'shape', 'datatype' and 'data', e.g. "
            '{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [0.5, 1.5]}.'
        )
    name = tensor["name"]
    shape = _shape(name, tensor.get("shape"))
    datatype = _datatype(name, tensor.get("datatype"))
    parameters = tensor.get("parameters") or {}
    if raw is not None:
        return tensor_from_raw(name, datatype, shape, raw, parameters)
    if "data" not in tensor:
        raise InvalidArgument(f"Input {name!r} has no 'data' (nor binary_data_size).")
    flat = _flat(tensor["data"])
    expected = int(np.prod(shape)) if shape else 1
    if len(flat) != expected:
        raise InvalidArgument(
            f"Input {name!r} has {len(flat)} values; its shape {list(shape)} needs {expected}."
        )
    return Tensor(name, datatype, shape, _typed(name, datatype, flat), parameters)


def tensor_from_raw(
    name: str, datatype: str, shape: tuple[int, ...], raw: bytes, parameters: Any = None
) -> Tensor:
    """A tensor from the binary tensor data extension's bytes (also gRPC's raw contents)."""
    expected = int(np.prod(shape)) if shape else 1
    if datatype == "BYTES":
        data = decode_bytes(name, raw)
    else:
        dtype = DATATYPES[datatype].newbyteorder("<")
        if len(raw) != expected * dtype.itemsize:
            raise InvalidArgument(
                f"Input {name!r} has {len(raw)} bytes of data; {datatype} of shape "
                f"{list(shape)} needs {expected * dtype.itemsize}."
            )
        data = np.frombuffer(raw, dtype=dtype).astype(DATATYPES[datatype])
    if len(data) != expected:
        raise InvalidArgument(
            f"Input {name!r} has {len(data)} values; its shape {list(shape)} needs {expected}."
        )
    return Tensor(name, datatype, shape, data, parameters or {})


def decode_bytes(name: str, raw: bytes) -> np.ndarray:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes."""
    values, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise InvalidArgument(f"Input {name!r} ends inside an element's length.")
        (size,) = struct.unpack_from("<I", raw, at)
        if at + 4 + size > len(raw):
            raise InvalidArgument(f"Input {name!r} has an element longer than its data.")
        values.append(raw[at + 4 : at + 4 + size].decode("utf-8", "replace"))
        at += 4 + size
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def encode_bytes(values: np.ndarray) -> bytes:
    parts = []
    for value in values.tolist():
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidArgument("A tensor's 'data' must be a list (flat or nested by its shape).")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _typed(name: str, datatype: str, flat: list[Any]) -> np.ndarray:
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise InvalidArgument(f"Input {name!r} is BYTES: send strings in its data.")
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise InvalidArgument(f"Input {name!r} is BOOL: send true or false in its data.")
        return np.asarray(flat, dtype=np.bool_)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        bad = next(v for v in flat if not isinstance(v, (int, float)) or isinstance(v, bool))
        raise InvalidArgument(
            f"Input {name!r} is {datatype} but holds {bad!r}; send numbers in its data."
        )
    try:
        return np.asarray(flat, dtype=DATATYPES[datatype])
    except (OverflowError, ValueError) as e:
        raise InvalidArgument(f"Input {name!r} has values that are not {datatype}: {e}.") from e


def frame_of(inputs: Sequence[Tensor], columns: Sequence[str]) -> pd.DataFrame:
    """The model's frame: one tensor per column (shape [n] or [n, 1]), or one [n, k]
    tensor whose k values per row are the model's columns in signature order."""
    if not inputs:
        raise InvalidArgument("An inference request needs 'inputs': a list of tensors.")
    first = inputs[0]
    if len(inputs) == 1 and len(first.shape) == 2 and first.shape[1] != 1:
        n, k = first.shape
        if k != len(columns):
            raise InvalidArgument(
                f"Input {first.name!r} of shape [{n}, {k}] needs k = {len(columns)}, one "
                f"value per column of the model: {', '.join(columns)}."
            )
        return pd.DataFrame(first.data.reshape(n, k), columns=list(columns))
    known = set(columns)
    out: dict[str, np.ndarray] = {}
    for tensor in inputs:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise InvalidArgument(
                f"Input {tensor.name!r} has shape {list(tensor.shape)}; with one input per "
                "column, each has shape [n] or [n, 1]."
            )
        if known and tensor.name not in known:
            raise InvalidArgument(
                f"Input {tensor.name!r} is not an input of the model; its inputs are "
                f"{', '.join(columns)}."
            )
        out[tensor.name] = tensor.data
    if len({len(v) for v in out.values()}) != 1:
        raise InvalidArgument("All input tensors must have the same number of rows.")
    return pd.DataFrame(out)
