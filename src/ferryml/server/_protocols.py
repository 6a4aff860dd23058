"""The request and response shapes of the three protocols the server speaks: ferryml's
own JSON, the Open Inference Protocol (KServe V2) and MLflow's scoring format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument
from ferryml.serving.runtime import frame_from_columns, frame_from_records

__all__ = [
    "frame_from_ferry",
    "frame_from_mlflow",
    "frame_from_v2",
    "v2_datatype",
    "v2_output",
    "v2_type",
]


def frame_from_ferry(body: Any, columns: Sequence[str]) -> pd.DataFrame:
    """``{"records": [{...}, ...]}`` or ``{"record": {...}}`` or ``{"columns": {...}}``."""
    if not isinstance(body, dict):
        raise InvalidArgument("The body must be a JSON object with 'records' or 'columns'.")
    if "records" in body:
        return frame_from_records(body["records"], columns)
    if "record" in body:
        return frame_from_records(body["record"], columns)
    if "columns" in body:
        return frame_from_columns(body["columns"])
    raise InvalidArgument(
        "The body needs 'records' (a list of objects) or 'columns' (an object of lists), "
        'e.g. {"records": [{"age": 41, "plan": "pro"}]}.'
    )


def frame_from_mlflow(body: Any, columns: Sequence[str]) -> pd.DataFrame:
    """MLflow's ``/invocations``: dataframe_split, dataframe_records, instances or inputs."""
    if not isinstance(body, dict):
        raise InvalidArgument("The body must be a JSON object (MLflow scoring format).")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise InvalidArgument("dataframe_split needs 'columns' and 'data' (a list of rows).")
        names = split.get("columns") or list(columns)
        return _rows(split["data"], names)
    if "dataframe_records" in body:
        return frame_from_records(body["dataframe_records"], columns)
    for key in ("instances", "inputs"):
        if key in body:
            value = body[key]
            if isinstance(value, dict):
                return frame_from_columns(value)
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return frame_from_records(value, columns)
            if isinstance(value, list):
                return _rows(value, list(columns))
            raise InvalidArgument(f"'{key}' must be a list of rows or records, or an object.")
    raise InvalidArgument(
        "The body needs one of dataframe_split, dataframe_records, instances or inputs."
    )


def _rows(rows: Any, names: Sequence[str]) -> pd.DataFrame:
    if not isinstance(rows, list) or not rows:
        raise InvalidArgument("Send at least one row.")
    if not isinstance(rows[0], list):
        rows = [rows]
    if any(not isinstance(r, list) or len(r) != len(names) for r in rows):
        raise InvalidArgument(
            f"Every row needs {len(names)} values, one per column: {', '.join(names)}."
        )
    return pd.DataFrame(rows, columns=list(names))


def frame_from_v2(body: Any, columns: Sequence[str]) -> pd.DataFrame:
    """V2 ``inputs``: one tensor per column (shape [n] or [n, 1]), or one [n, k] tensor
    whose k values are the model's columns in signature order."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InvalidArgument("An inference request needs 'inputs': a list of tensors.")
    tensors = body["inputs"]
    for t in tensors:
        if not isinstance(t, dict) or not {"name", "shape", "data"} <= set(t):
            raise InvalidArgument("Each input tensor needs 'name', 'shape', 'datatype', 'data'.")
        if not isinstance(t["shape"], list) or not all(
            isinstance(d, int) and d >= 0 for d in t["shape"]
        ):
            raise InvalidArgument(f"Tensor {t['name']!r} has a malformed shape {t['shape']!r}.")
        if not isinstance(t["data"], list):
            raise InvalidArgument(f"Tensor {t['name']!r} data must be a list.")
    if len(tensors) == 1 and len(tensors[0]["shape"]) == 2 and tensors[0]["shape"][1] != 1:
        tensor = tensors[0]
        n, k = tensor["shape"]
        data = np.asarray(_flat(tensor["data"]), dtype=object)
        if data.size != n * k or k != len(columns):
            raise InvalidArgument(
                f"Tensor {tensor['name']!r} of shape [{n}, {k}] needs {n * k} values and "
                f"k = {len(columns)} (the model's columns: {', '.join(columns)})."
            )
        return pd.DataFrame(data.reshape(n, k).tolist(), columns=list(columns))
    out = {}
    lengths = set()
    for tensor in tensors:
        values = _flat(tensor["data"])
        expected = int(np.prod(tensor["shape"])) if tensor["shape"] else 1
        if len(values) != expected:
            raise InvalidArgument(
                f"Tensor {tensor['name']!r} has {len(values)} values; its "
                f"shape {tensor['shape']} needs {expected}."
            )
        out[str(tensor["name"])] = values
        lengths.add(len(values))
    if len(lengths) != 1:
        raise InvalidArgument("All input tensors must have the same number of rows.")
    return pd.DataFrame(out)


def _flat(data: list[Any]) -> list[Any]:
    if data and isinstance(data[0], list):
        return [v for row in data for v in (row if isinstance(row, list) else [row])]
    return data


def v2_datatype(values: list[Any]) -> str:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float):
        return "FP64"
    return "BYTES"


def v2_output(name: str, values: list[Any]) -> dict[str, Any]:
    shape = [len(values)]
    if values and isinstance(values[0], list):
        shape.append(len(values[0]))
        flat = [v for row in values for v in row]
    else:
        flat = values
    return {"name": name, "shape": shape, "datatype": v2_datatype(flat), "data": flat}


def v2_type(kind: str) -> str:
    """The V2 datatype of a signature's column type."""
    return {"integer": "INT64", "float": "FP64", "boolean": "BOOL"}.get(kind, "BYTES")
