"""The OpenAPI document of the model server, with request and response schemas built from
the served model's signature (its columns and their types, its outputs and an example),
so /docs shows the fields to send. Rebuilt when the served version changes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ferryml.server import _inference as oip
from ferryml.serving.runtime import Loaded
from ferryml.serving.service import PredictionService

__all__ = ["openapi_of"]

_JSON_TYPES = {
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
}
_V2_JSON = {"INT64": "integer", "FP64": "number", "BOOL": "boolean", "BYTES": "string"}


def openapi_of(app: FastAPI, service: PredictionService) -> dict[str, Any]:
    """The document for the version served now (cached until it changes)."""
    loaded = service.primary() if service.ready else None
    key = None if loaded is None else (loaded.name, loaded.version)
    cached = getattr(app.state, "openapi", None)
    if cached is not None and cached[0] == key:
        return dict(cached[1])
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    if loaded is not None:
        _describe(schema, loaded)
    app.state.openapi = (key, schema)
    return dict(schema)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _describe(doc: dict[str, Any], loaded: Loaded) -> None:
    signature = loaded.model.signature
    inputs = signature.inputs if signature is not None else ()
    example = loaded.model.metadata.input_example or []
    fields: dict[str, Any] = {}
    for column in inputs:
        kind = dict(_JSON_TYPES.get(column.type, {}))
        fields[column.name] = {"anyOf": [kind, {"type": "null"}]} if column.optional else kind
    outputs = oip.output_specs(loaded)
    prediction = {"type": _V2_JSON.get(outputs[0]["datatype"], "string")}
    record = {
        "type": "object",
        "title": f"A row for {loaded.name} version {loaded.version}",
        "properties": fields,
        "required": [c.name for c in inputs if not c.optional],
    }
    if example:
        record["example"] = example[0]
    columns = {name: {"type": "array", "items": kind} for name, kind in fields.items()}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "description": "A column, or any name for one [n, k]"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": list(oip.tensors.DATATYPES)},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {}},
        },
    }
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Record"] = record
    schemas["PredictRequest"] = {
        "type": "object",
        "description": "One of records, record or columns.",
        "properties": {
            "records": {"type": "array", "items": _ref("Record")},
            "record": _ref("Record"),
            "columns": {"type": "object", "properties": columns},
        },
        "example": {"records": example[:2]},
    }
    schemas["PredictResponse"] = {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "route": {"type": "string"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "predictions": {"type": "array", "items": prediction},
        },
    }
    schemas["InferenceTensor"] = tensor
    schemas["InferenceRequest"] = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {"type": "array", "items": _ref("InferenceTensor")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "enum": [o["name"] for o in outputs]},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
        "example": {
            "inputs": [
                {
                    "name": c.name,
                    "shape": [len(example)],
                    "datatype": oip.COLUMN_DATATYPES.get(c.type, "BYTES"),
                    "data": [row.get(c.name) for row in example],
                }
                for c in inputs
            ]
        },
    }
    schemas["InferenceResponse"] = {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": _ref("InferenceTensor")},
        },
    }
    names = [c.name for c in inputs]
    schemas["MlflowRequest"] = {
        "type": "object",
        "description": "One of dataframe_split, dataframe_records, instances or inputs; "
        "params are accepted and ignored (the model takes none).",
        "properties": {
            "dataframe_split": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}, "example": names},
                    "index": {"type": "array", "items": {}},
                    "data": {"type": "array", "items": {"type": "array", "items": {}}},
                },
            },
            "dataframe_records": {"type": "array", "items": _ref("Record")},
            "instances": {"type": "array", "items": _ref("Record")},
            "inputs": {"type": "object", "properties": columns},
            "params": {"type": "object"},
        },
        "example": {"dataframe_records": example[:2]},
    }
    schemas["MlflowResponse"] = {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": prediction}},
    }
    bodies = {
        ("/v1/models/{name}/predict", "PredictRequest", "PredictResponse"),
        ("/v2/models/{name}/infer", "InferenceRequest", "InferenceResponse"),
        ("/v2/models/{name}/versions/{version}/infer", "InferenceRequest", "InferenceResponse"),
        ("/invocations", "MlflowRequest", "MlflowResponse"),
    }
    for path, request, response in bodies:
        post = doc["paths"].get(path, {}).get("post")
        if post is None:
            continue
        content = post.setdefault("requestBody", {"required": True}).setdefault("content", {})
        content["application/json"] = {"schema": _ref(request)}
        if path == "/invocations":
            content["text/csv"] = {
                "schema": {"type": "string"},
                "example": ",".join(names) + "\n",
            }
        post.setdefault("responses", {})["200"] = {
            "description": "Predictions",
            **_json(_ref(response)),
        }
