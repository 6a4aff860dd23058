"""ferryml's records as MLflow's JSON (protobuf's JSON style: empty fields left out, ids
and version numbers as strings, NaN and infinities as strings), and MLflow's page tokens."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from fastapi.responses import Response

from ferryml.errors import InvalidArgument
from ferryml.store.entities import (
    Experiment,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    RunInfo,
)
from ferryml.store.sql_mlflow import DatasetInput, LoggedModel, MetricRow

__all__ = [
    "artifact_uri",
    "dataset_input",
    "experiment",
    "logged_model",
    "metric",
    "metric_value",
    "model_version",
    "offset_of",
    "ok",
    "page_token",
    "registered_model",
    "run",
    "run_info",
    "tag_list",
]


def ok(body: dict[str, Any] | None = None) -> Response:
    """A 200 with ``body``, its None fields left out (a last page has no token)."""
    found = {k: v for k, v in (body or {}).items() if v is not None}
    return Response(orjson.dumps(found), media_type="application/json")


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def _drop_empty(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None and v != [] and v != {}}


def metric_value(value: Any) -> float:
    """A metric value as the client sends it: a number, or "NaN" / "Infinity" /
    "-Infinity"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgument(f"Metric value {value!r} is not a number.")
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidArgument(f"Metric value {value!r} is not a number.") from None
        if not math.isnan(number) and not math.isinf(number) and value.strip() != value:
            raise InvalidArgument(f"Metric value {value!r} is not a number.")
        return number
    return float(value)


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def metric(m: Metric) -> dict[str, Any]:
    return {"key": m.key, "value": _number(m.value), "timestamp": m.timestamp, "step": m.step}


def experiment(e: Experiment) -> dict[str, Any]:
    return _drop_empty(
        {
            "experiment_id": e.experiment_id,
            "name": e.name,
            "artifact_location": f"mlflow-artifacts:/{e.experiment_id}",
            "lifecycle_stage": e.lifecycle_stage,
            "creation_time": e.creation_time,
            "last_update_time": e.last_update_time,
            "tags": tag_list(e.tags),
        }
    )


def artifact_uri(experiment_id: str, run_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def run_info(info: RunInfo) -> dict[str, Any]:
    body = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "experiment_id": info.experiment_id,
        "run_name": info.run_name,
        "user_id": info.user,
        "status": info.status.value,
        "start_time": info.start_time,
        "artifact_uri": f"mlflow-artifacts:/{info.experiment_id}/{info.run_id}/artifacts",
        "lifecycle_stage": info.lifecycle_stage,
    }
    if info.end_time is not None:
        body["end_time"] = info.end_time
    return body


# Tags MLflow keeps in tags, added from ferryml's columns (for runs ferryml's own client
# logged), each unless the run has it.
_COLUMN_TAGS = (
    ("mlflow.user", "user"),
    ("mlflow.parentRunId", "parent_run_id"),
    ("mlflow.note.content", "description"),
)


def _run_tags(r: Run) -> list[dict[str, str]]:
    tags = r.data.tags
    info = r.info
    found = [{"key": k, "value": v} for k, v in tags.items()]
    if "mlflow.runName" not in tags:
        found.append({"key": "mlflow.runName", "value": info.run_name})
    for tag, column in _COLUMN_TAGS:
        value = getattr(info, column)
        if value and tag not in tags:
            found.append({"key": tag, "value": value})
    return found


def dataset_input(i: DatasetInput) -> dict[str, Any]:
    dataset = {
        "name": i.name,
        "digest": i.digest,
        "source_type": i.source_type,
        "source": i.source,
        "schema": i.schema or None,
        "profile": i.profile or None,
    }
    return _drop_empty({"tags": tag_list(i.tags), "dataset": _drop_empty(dataset)})


def run(
    r: Run,
    metrics: Sequence[MetricRow] | None = None,
    inputs: Sequence[DatasetInput] = (),
    models: Iterable[LoggedModel] = (),
) -> dict[str, Any]:
    """``metrics``: the latest values as (key, value, timestamp, step) (else step 0). Built
    for a search's thousand runs: no more than a dict per value."""
    if metrics is None:
        metrics = [(k, v, r.info.start_time, 0) for k, v in r.data.metrics.items()]
    data: dict[str, Any] = {}
    if metrics:
        isfinite = math.isfinite
        data["metrics"] = [
            {"key": k, "value": v if isfinite(v) else _number(v), "timestamp": t, "step": s}
            for k, v, t, s in metrics
        ]
    if r.data.params:
        data["params"] = [{"key": k, "value": v} for k, v in r.data.params.items()]
    data["tags"] = _run_tags(r)
    body: dict[str, Any] = {"info": run_info(r.info), "data": data, "inputs": {}, "outputs": {}}
    if inputs or r.inputs:
        body["inputs"] = _inputs(r, inputs)
    if models:
        body["outputs"] = {"model_outputs": [{"model_id": m.model_id, "step": 0} for m in models]}
    return body


def _inputs(r: Run, inputs: Sequence[DatasetInput]) -> dict[str, Any]:
    listed = {(i.name, i.digest) for i in inputs}
    # Inputs that ferryml's own client logged (dataset versions), after MLflow's.
    extra = [
        DatasetInput(
            x.name,
            x.digest,
            "ferryml",
            f"{x.name}@{x.version}",
            "",
            "",
            {"mlflow.data.context": x.context} if x.context else {},
        )
        for x in r.inputs
        if (x.name, x.version) not in listed and (x.name, x.digest) not in listed
    ]
    return _drop_empty({"dataset_inputs": [dataset_input(i) for i in [*inputs, *extra]]})


def logged_model(m: LoggedModel) -> dict[str, Any]:
    info = {
        "model_id": m.model_id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "artifact_uri": f"mlflow-artifacts:/{m.experiment_id}/models/{m.model_id}/artifacts",
        "status": m.status,
        "model_type": m.model_type,
        "source_run_id": m.source_run_id,
        "creation_timestamp_ms": m.creation_time,
        "last_updated_timestamp_ms": m.last_update_time,
        "tags": tag_list(m.tags),
    }
    return {"info": _drop_empty(info), "data": _drop_empty({"params": tag_list(m.params)})}


def model_version(v: ModelVersion) -> dict[str, Any]:
    body = {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": v.creation_time,
        "last_updated_timestamp": v.creation_time,
        "current_stage": "None",
        "description": v.description,
        "source": v.source,
        "run_id": v.run_id or "",
        "status": "READY",
        "run_link": "",
        "tags": tag_list(v.tags),
        "aliases": list(v.aliases),
    }
    if v.source.startswith("models:/m-"):
        body["model_id"] = v.source[len("models:/") :]
    return _drop_empty(body) | {"description": v.description}


def registered_model(m: RegisteredModel, latest: Sequence[ModelVersion] = ()) -> dict[str, Any]:
    body = {
        "name": m.name,
        "creation_timestamp": m.creation_time,
        "last_updated_timestamp": m.last_update_time,
        "description": m.description or None,
        "tags": tag_list(m.tags),
        "latest_versions": [model_version(v) for v in latest],
        "aliases": [{"alias": a, "version": str(n)} for a, n in m.aliases.items()],
    }
    return _drop_empty(body)


def page_token(offset: int | None) -> str | None:
    if offset is None:
        return None
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_of(token: str | None) -> int:
    """The offset an MLflow page token names (0 for none)."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise InvalidArgument(f"Invalid page_token {token!r}: send back the token a search gave.")
