"""ONNX models (an ``onnx.ModelProto``, or its serialized bytes) saved as ``model.onnx``
and run with ONNX Runtime on the CPU.

``predict(DataFrame)`` feeds the whole frame as the model's one input, converted to the
element type the model declares. A classifier converted by skl2onnx (or onnxmltools)
returns a label and a probability output; the probability output (named
``*probabilit*``, either a tensor or skl2onnx's ZipMap list of dicts) is ``predict_proba``
and the other, first output is ``predict``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ferryml.errors import InvalidArgument
from ferryml.registry.flavors import pin, require
from ferryml.registry.flavors.base import Predictor

__all__ = ["ONNXFlavor"]

FILE = "model.onnx"
DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class _SessionPredictor:
    def __init__(self, session: Any, output: str) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in DTYPES:
            found = ", ".join(f"{i.name}: {i.type}" for i in inputs)
            raise InvalidArgument(
                f"This ONNX model takes ({found}); ferryml feeds a DataFrame as one input "
                f"of type {' or '.join(DTYPES)}. Convert the model with one such input."
            )
        self.session, self.output = session, output
        self.input, self.dtype = inputs[0].name, DTYPES[inputs[0].type]

    def _run(self, output: str, data: Any) -> Any:
        feed = {self.input: data.to_numpy(dtype=self.dtype)}
        return self.session.run([output], feed)[0]

    def predict(self, data: Any) -> Any:
        return self._run(self.output, data)


class _ClassifierPredictor(_SessionPredictor):
    def __init__(self, session: Any, output: str, proba: str) -> None:
        super().__init__(session, output)
        self.proba = proba

    def predict_proba(self, data: Any) -> Any:
        proba = self._run(self.proba, data)
        if isinstance(proba, list):  # ZipMap: one {class: probability} per row
            return np.array([list(row.values()) for row in proba], dtype=np.float32)
        return proba


class ONNXFlavor:
    """An ``onnx.ModelProto`` or the bytes of one."""

    name = "onnx"
    extra: str | None = "onnx"

    def matches(self, model: Any) -> bool:
        onnx = sys.modules.get("onnx")
        return isinstance(model, (bytes, bytearray)) or (
            onnx is not None and isinstance(model, onnx.ModelProto)
        )

    def save(self, model: Any, folder: Path) -> None:
        onnx = require("onnx", "onnx")
        if isinstance(model, (bytes, bytearray)):
            decode_error = require("google.protobuf.message", "onnx").DecodeError
            data = bytes(model)
            try:
                model = onnx.load_model_from_string(data)
                onnx.checker.check_model(model)  # an empty string parses, as an empty model
            except (decode_error, onnx.checker.ValidationError) as e:
                raise InvalidArgument(
                    f"These {len(data)} bytes are not an ONNX model ({e}). Pass an "
                    "onnx.ModelProto or the bytes of one."
                ) from e
        (folder / FILE).write_bytes(model.SerializeToString())

    def load(self, folder: Path) -> Predictor:
        ort = require("onnxruntime", "onnx")
        session = ort.InferenceSession(str(folder / FILE), providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]
        proba = next((n for n in outputs if "probabilit" in n.lower()), None)
        label = next((n for n in outputs if n != proba), outputs[0])
        if proba is None:
            return _SessionPredictor(session, label)
        return _ClassifierPredictor(session, label, proba)

    def requirements(self) -> list[str]:
        return [pin("onnxruntime", "onnxruntime-gpu")]
