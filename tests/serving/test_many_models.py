"""Several models in one server (``ferry serve iris/1 size/1``): each under its own name on
every protocol, with its own metric series."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from serving_net import free_port
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.server.main import build_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Any, Any, Any]]:
    root = tmp_path_factory.mktemp("two")
    settings = Settings.resolve(home=root / "home", cwd=root, environ={})
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    X, y = load_iris(return_X_y=True, as_frame=True)
    classes = LogisticRegression(max_iter=500).fit(X, y)
    size = LinearRegression().fit(X.drop(columns="petal width (cm)"), X["petal width (cm)"])
    with ferry.start_run():
        ferry.log_model(classes, input_example=X.head(), registered_model_name="iris")
        features = X.drop(columns="petal width (cm)")
        ferry.log_model(size, input_example=features.head(), registered_model_name="size")
    ferry.configure(home=settings.home)
    app = build_app(settings, ["iris/1", "size/1"], log_predictions=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client, X, classes, size
    server.should_exit = True
    thread.join(timeout=30)


def test_each_model_answers_under_its_own_name(two: tuple[httpx.Client, Any, Any, Any]) -> None:
    client, X, classes, size = two
    rows = X.iloc[[3, 77]]
    features = rows.drop(columns="petal width (cm)")
    assert client.get("/ready").status_code == 200
    listed = client.get("/v1/models").json()["models"]
    assert [(m["name"], m["version"]) for m in listed] == [("iris", 1), ("size", 1)]
    r = client.post("/v1/models/size/predict", json={"records": features.to_dict("records")})
    assert r.json()["predictions"] == pytest.approx(size.predict(features).tolist())
    tensor = {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows.to_numpy().tolist()}
    r = client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert r.json()["outputs"][0]["data"] == classes.predict(rows).tolist()
    meta = client.get("/v2/models/size").json()
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert len(meta["inputs"]) == 3
    r = client.get("/v2/models/other")
    assert r.status_code == 404
    assert r.json() == {
        "error": "Model 'other' is not served here; this server serves 'iris', 'size'."
    }
    metrics = client.get("/metrics").text
    assert 'endpoint="v1",model="size",route="primary",status="ok",version="1"} 1.0' in metrics
    assert 'endpoint="v2",model="iris",route="primary",status="ok",version="1"} 1.0' in metrics


def test_a_name_given_twice_is_refused(tmp_path: Any) -> None:
    from ferryml.errors import InvalidArgument
    from ferryml.server.app import create_app
    from ferryml.serving.service import PredictionService

    settings = Settings.resolve(home=tmp_path / "home", cwd=tmp_path, environ={})
    same = [PredictionService(settings, "m", []), PredictionService(settings, "m", [])]
    with pytest.raises(InvalidArgument, match="a name is given twice"):
        create_app(same)
