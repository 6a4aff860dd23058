"""The Open Inference Protocol, MLflow's /invocations and the OpenAPI document over real
HTTP, against one server for the module: what a client of each protocol gets."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_net import free_port
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.server import _tensors as tensors
from ferryml.server.main import build_app

pytestmark = pytest.mark.e2e


class World:
    def __init__(self, X: pd.DataFrame, model: Any, client: httpx.Client) -> None:
        self.X, self.model, self.client = X, model, client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import threading
    import time

    import uvicorn

    root: Path = tmp_path_factory.mktemp("oip")
    settings = Settings.resolve(home=root / "home", cwd=root, environ={})
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(X, data.target)
    with ferry.start_run():
        ferry.log_model(model, input_example=X.head(), registered_model_name="iris")
    ferry.set_registered_model_alias("iris", "champion", 1)
    app = build_app(settings, "iris@champion", log_predictions=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield World(X, model, client)
    server.should_exit = True
    thread.join(timeout=30)
    ferry.configure(home=settings.home)


def _columns(X: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"name": c, "shape": [len(X)], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns
    ]


def test_server_metadata_names_ferryml_its_version_and_extensions(world: World) -> None:
    r = world.client.get("/v2")
    assert r.status_code == 200
    assert r.json() == {
        "name": "ferryml",
        "version": ferry.__version__,
        "extensions": ["binary_tensor_data", "model_repository"],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/v2/models/nope/infer", b'{"inputs": []}', 404, "'nope' is not served"),
        ("GET", "/v2/models/nope", None, 404, "'nope' is not served"),
        ("POST", "/v2/models/iris/infer", b"{oops", 400, "not valid JSON"),
        ("POST", "/v2/models/iris/infer", b'{"inputs": []}', 400, "needs 'inputs'"),
        ("GET", "/v2/nowhere", None, 404, "No route GET /v2/nowhere"),
        ("GET", "/v2/models/iris/infer", None, 405, "Method Not Allowed"),
        ("GET", "/v2/models/iris/versions/7", None, 404, "Version 7 of 'iris' is not served"),
        ("GET", "/v2/models/iris/versions/x/ready", None, 404, "Version 'x' is not served"),
    ],
)
def test_every_v2_failure_is_an_error_body_with_its_status(
    world: World, method: str, path: str, body: bytes | None, status: int, says: str
) -> None:
    r = world.client.request(method, path, content=body)
    assert r.status_code == status
    assert list(r.json()) == ["error"] and says in r.json()["error"]


def test_a_body_over_the_limit_on_v2_is_413_with_an_error_body_and_counted(world: World) -> None:
    r = world.client.post("/v2/models/iris/infer", content=b"x" * (11 * 1024 * 1024))
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    metrics = world.client.get("/metrics").text.splitlines()
    assert (
        'ferry_errors_total{model="iris",route="/v2/models/{name}/infer",status="413"} 1.0'
        in metrics
    )


def test_error_metrics_are_labelled_by_route_template_and_known_names_only(world: World) -> None:
    def errors() -> dict[str, float]:
        lines = world.client.get("/metrics").text.splitlines()
        found = (line.rsplit(" ", 1) for line in lines if line.startswith("ferry_errors_total{"))
        return {labels: float(value) for labels, value in found}

    before = errors()
    for name in ("a1", "b2", "c3"):
        assert world.client.get(f"/v2/models/{name}").status_code == 404
    after = errors()
    unknown = 'ferry_errors_total{model="unknown",route="/v2/models/{name}",status="404"}'
    assert after[unknown] - before.get(unknown, 0.0) == 3.0
    assert not any(name in labels for labels in after for name in ("a1", "b2", "c3"))


def test_versioned_routes_answer_for_the_served_version(world: World) -> None:
    X = world.X.head(2)
    meta = world.client.get("/v2/models/iris/versions/1").json()
    assert meta["versions"] == ["1"] and meta["name"] == "iris"
    ready = world.client.get("/v2/models/iris/versions/1/ready")
    assert ready.status_code == 200 and ready.json() == {"name": "iris", "ready": True}
    r = world.client.post("/v2/models/iris/versions/1/infer", json={"inputs": _columns(X)})
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    assert r.json()["outputs"][0]["data"] == world.model.predict(X).tolist()
    r = world.client.post("/v2/models/iris/versions/2/infer", json={"inputs": _columns(X)})
    assert r.status_code == 404 and r.json() == {
        "error": "Version 2 of 'iris' is not served here; served: 1."
    }


def test_metadata_declares_what_infer_returns(world: World) -> None:
    meta = world.client.get("/v2/models/iris").json()
    assert [o["name"] for o in meta["outputs"]] == [
        "predict",
        "predict_proba",
        "predict_proba_0",
        "predict_proba_1",
        "predict_proba_2",
    ]
    assert meta["inputs"][0] == {"name": "sepal_length", "datatype": "FP64", "shape": [-1]}
    request = {
        "inputs": _columns(world.X.head(3)),
        "outputs": [{"name": o["name"]} for o in meta["outputs"]],
    }
    outputs = world.client.post("/v2/models/iris/infer", json=request).json()["outputs"]
    for declared, answered in zip(meta["outputs"], outputs, strict=True):
        assert answered["name"] == declared["name"]
        assert answered["datatype"] == declared["datatype"]
        assert len(answered["shape"]) == len(declared["shape"])
        assert [d for d in declared["shape"] if d != -1] == answered["shape"][1:]


def test_outputs_select_predictions_and_probabilities(world: World) -> None:
    X = world.X.iloc[[0, 60, 120]]
    proba = world.model.predict_proba(X)
    request = {
        "id": "r-7",
        "inputs": [
            {"name": "x", "shape": [3, 4], "datatype": "FP32", "data": X.to_numpy().tolist()}
        ],
        "outputs": [{"name": "predict_proba"}, {"name": "predict_proba_2"}],
    }
    body = world.client.post("/v2/models/iris/infer", json=request).json()
    assert body["id"] == "r-7" and len(body["parameters"]["prediction_ids"].split(",")) == 3
    matrix, column = body["outputs"]
    assert (matrix["name"], matrix["shape"], matrix["datatype"]) == (
        "predict_proba",
        [3, 3],
        "FP64",
    )
    assert np.allclose(np.reshape(matrix["data"], (3, 3)), proba, atol=1e-6)
    assert column["shape"] == [3] and np.allclose(column["data"], proba[:, 2], atol=1e-6)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"outputs": [{"name": "score"}]}, "Output 'score' is not an output of model 'iris'"),
        ({"parameters": {"priority": 1}}, "Parameter 'priority' of the request is not one"),
        ({"parameters": {"binary_data_output": "yes"}}, "must be true or false"),
        ({"id": 5}, "'id' must be a string"),
    ],
)
def test_outputs_and_parameters_the_server_cannot_honour_are_refused(
    world: World, change: dict[str, Any], says: str
) -> None:
    r = world.client.post(
        "/v2/models/iris/infer", json={"inputs": _columns(world.X.head(1)), **change}
    )
    assert r.status_code == 400 and says in r.json()["error"]


def test_binary_tensors_in_and_out(world: World) -> None:
    X = world.X.iloc[[1, 70, 140]]
    raw = X.to_numpy(dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [3, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [
                {"name": "predict"},
                {"name": "predict_proba", "parameters": {"binary_data": False}},
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    r = world.client.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    size = int(r.headers["inference-header-content-length"])
    answer = json.loads(r.content[:size])
    predict, proba = answer["outputs"]
    assert predict["parameters"] == {"binary_data_size": 24} and "data" not in predict
    assert np.frombuffer(r.content[size:], "<i8").tolist() == world.model.predict(X).tolist()
    assert np.allclose(np.reshape(proba["data"], (3, 3)), world.model.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize(
    ("declared", "body_extra", "says"),
    [
        (17, b"", "beyond the 16 bytes"),
        (16, b"\x00", "1 bytes of binary data that no input declares"),
    ],
)
def test_binary_data_that_does_not_add_up_is_refused(
    world: World, declared: int, body_extra: bytes, says: str
) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    ).encode()
    r = world.client.post(
        "/v2/models/iris/infer",
        content=header + b"\x00" * 16 + body_extra,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400 and says in r.json()["error"]


def test_bytes_elements_round_trip_in_the_binary_form() -> None:
    values = np.array(["a", "", "héllo"], dtype=object)
    raw = tensors.encode_bytes(values)
    assert raw[:5] == struct.pack("<I", 1) + b"a"
    assert tensors.decode_bytes("x", raw).tolist() == ["a", "", "héllo"]
    with pytest.raises(InvalidArgument, match="longer than its data"):
        tensors.decode_bytes("x", struct.pack("<I", 9) + b"ab")


def test_invocations_takes_csv_and_every_mlflow_json_format(world: World) -> None:
    X = world.X.head(3)
    expected = {"predictions": world.model.predict(X).tolist()}
    csv = world.client.post(
        "/invocations", content=X.to_csv(index=False), headers={"Content-Type": "text/csv"}
    )
    assert csv.status_code == 200 and csv.json() == expected
    split = {"columns": list(X.columns), "index": [5, 6, 7], "data": X.to_numpy().tolist()}
    for body in (
        {"dataframe_split": split, "params": {"threshold": 0.3}},
        {"dataframe_records": X.to_dict("records")},
        {"instances": X.to_numpy().tolist()},
        {"inputs": {c: X[c].tolist() for c in X.columns}},
    ):
        assert world.client.post("/invocations", json=body).json() == expected


@pytest.mark.parametrize(
    ("content", "content_type", "says"),
    [
        (b"a,b\n", "text/csv", "The CSV has no rows"),
        (b"<x/>", "application/xml", "Content type 'application/xml' is not one"),
        (b"{", "application/json", "not valid JSON"),
    ],
)
def test_invocations_errors_are_mlflow_error_bodies(
    world: World, content: bytes, content_type: str, says: str
) -> None:
    r = world.client.post("/invocations", content=content, headers={"Content-Type": content_type})
    assert r.status_code == 400
    assert r.json()["error_code"] == "BAD_REQUEST" and says in r.json()["message"]


def test_openapi_describes_the_served_models_fields(world: World) -> None:
    doc = world.client.get("/openapi.json").json()
    record = doc["components"]["schemas"]["Record"]
    assert record["properties"]["petal_width"] == {"type": "number"}
    assert record["required"] == list(world.X.columns)
    assert record["example"] == world.X.head(1).to_dict("records")[0]
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    outputs = doc["components"]["schemas"]["InferenceRequest"]["properties"]["outputs"]
    assert outputs["items"]["properties"]["name"]["enum"][:2] == ["predict", "predict_proba"]
    predict = doc["paths"]["/v1/models/{name}/predict"]["post"]["responses"]["200"]
    assert predict["content"]["application/json"]["schema"]["$ref"].endswith("PredictResponse")
    assert doc["components"]["schemas"]["PredictResponse"]["properties"]["predictions"] == {
        "type": "array",
        "items": {"type": "integer"},
    }
    assert "text/csv" in doc["paths"]["/invocations"]["post"]["requestBody"]["content"]
