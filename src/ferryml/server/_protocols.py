"""The request shapes of ferryml's own JSON and MLflow's scoring format (the Open Inference
Protocol's are in ``_tensors`` and ``_inference``)."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd

from ferryml.errors import InvalidArgument
from ferryml.serving.runtime import frame_from_columns, frame_from_records

log = logging.getLogger("ferryml.server")

__all__ = ["frame_from_ferry", "frame_from_mlflow", "frame_from_mlflow_body"]


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


def frame_from_mlflow_body(
    body: bytes, content_type: str | None, columns: Sequence[str]
) -> pd.DataFrame:
    """An ``/invocations`` body: JSON in MLflow's scoring format, or CSV with a header."""
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "text/csv":
        return _csv(body)
    if kind != "application/json":
        raise InvalidArgument(
            f"Content type {kind!r} is not one /invocations takes: send application/json "
            "(MLflow's scoring format) or text/csv."
        )
    try:
        return frame_from_mlflow(orjson.loads(body), columns)
    except orjson.JSONDecodeError as e:
        raise InvalidArgument(f"The body is not valid JSON: {e}.") from e


def _csv(body: bytes) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise InvalidArgument(f"The body is not CSV with a header row: {e}.") from e
    if frame.empty:
        raise InvalidArgument("The CSV has no rows: send a header row and at least one row.")
    return frame


def frame_from_mlflow(body: Any, columns: Sequence[str]) -> pd.DataFrame:
    """MLflow's ``/invocations``: dataframe_split, dataframe_records, instances or inputs."""
    if not isinstance(body, dict):
        raise InvalidArgument("The body must be a JSON object (MLflow scoring format).")
    if body.get("params"):  # as MLflow does for a model whose signature has no params
        log.warning("ignored the request's params: the model takes none")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise InvalidArgument("dataframe_split needs 'columns' and 'data' (a list of rows).")
        names = split.get("columns") or list(columns)
        frame = _rows(split["data"], names)
        index = split.get("index")
        if isinstance(index, list) and len(index) == len(frame):
            frame.index = pd.Index(index)
        return frame
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
