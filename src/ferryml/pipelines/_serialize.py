"""Step outputs as bytes: DataFrames as Parquet, arrays as .npy, JSON values as JSON, other
objects pickled. Pickles are only ever loaded after their digest was checked against the
one recorded when they were written."""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

from ferryml.errors import InvalidArgument


def dumps(value: Any, step: str) -> tuple[bytes, str]:
    """``(data, format)`` of a step's output.

    Raises:
        InvalidArgument: the value cannot be stored; names the step and the type.
    """
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        buffer = io.BytesIO()
        value.to_parquet(buffer, index=False)
        return buffer.getvalue(), "parquet"
    if isinstance(value, np.ndarray) and value.dtype != object:
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue(), "npy"
    if _jsonable(value):
        return json.dumps(value).encode(), "json"
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise InvalidArgument(
            f"Step {step!r} returned a {type(value).__module__}.{type(value).__qualname__}, "
            f"which cannot be stored ({e}). Return a DataFrame, an array, JSON values or a "
            "picklable object."
        ) from e


def loads(data: bytes, fmt: str) -> Any:
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "json":
        return json.loads(data)
    if fmt == "pickle":
        return pickle.loads(data)  # noqa: S301 - the caller verified the digest
    raise InvalidArgument(f"Unknown output format {fmt!r}.")


def _jsonable(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if value is None or isinstance(value, (bool, str)):
        return True
    if type(value) in (int, float):
        return True
    if type(value) in (list, tuple):
        return type(value) is list and all(_jsonable(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _jsonable(v, depth + 1) for k, v in value.items())
    return False
