"""The model server over real HTTP: three protocols, errors as 4xx, hot reload, metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import ferryml as ferry
from ferryml.errors import InvalidArgument, NotFound
from ferryml.server.main import build_app
from ferryml.serving.service import BatchOptions

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(registered: Any, serve: Callable[[Any], Any]) -> Any:
    app = build_app(registered.settings, "cancer@champion", log_predictions=False, poll_seconds=0.2)
    return serve(app)


def test_ferry_json_answers_with_ids_and_the_version(server: Any, registered: Any) -> None:
    X = registered.X.head(3)
    expected = registered.good.predict(X).tolist()
    r = server.client.post("/v1/models/cancer/predict", json={"records": X.to_dict("records")})
    body = r.json()
    assert r.status_code == 200
    assert (body["model"], body["version"], body["predictions"]) == ("cancer", 1, expected)
    assert len(set(body["ids"])) == 3
    columns = {c: X[c].tolist() for c in X.columns}
    r = server.client.post("/v1/models/cancer/predict", json={"columns": columns})
    assert r.json()["predictions"] == expected
    r = server.client.post("/v1/models/cancer/predict", json={"record": X.iloc[0].to_dict()})
    assert r.json()["predictions"] == expected[:1]


def test_open_inference_protocol(server: Any, registered: Any) -> None:
    X = registered.X.head(2)
    expected = registered.good.predict(X).tolist()
    assert server.client.get("/v2/health/live").json() == {"live": True}
    assert server.client.get("/v2/health/ready").json() == {"ready": True}
    assert server.client.get("/v2/models/cancer/ready").json()["ready"] is True
    meta = server.client.get("/v2/models/cancer").json()
    assert meta["versions"] == ["1"] and meta["inputs"][0] == {
        "name": "mean radius",
        "datatype": "FP64",
        "shape": [-1],
    }
    matrix = {
        "id": "req-1",
        "inputs": [
            {"name": "x", "shape": [2, 30], "datatype": "FP64", "data": X.to_numpy().tolist()}
        ],
    }
    body = server.client.post("/v2/models/cancer/infer", json=matrix).json()
    assert body["id"] == "req-1" and body["model_version"] == "1"
    assert body["outputs"][0] == {
        "name": "predict",
        "shape": [2],
        "datatype": "INT64",
        "data": expected,
    }
    per_column = {
        "inputs": [
            {"name": c, "shape": [2], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns
        ]
    }
    body = server.client.post("/v2/models/cancer/infer", json=per_column).json()
    assert body["outputs"][0]["data"] == expected


def test_mlflow_scoring_formats(server: Any, registered: Any) -> None:
    X = registered.X.head(2)
    expected = {"predictions": registered.good.predict(X).tolist()}
    bodies = [
        {"dataframe_split": {"columns": list(X.columns), "data": X.to_numpy().tolist()}},
        {"dataframe_records": X.to_dict("records")},
        {"instances": X.to_dict("records")},
        {"inputs": {c: X[c].tolist() for c in X.columns}},
    ]
    for body in bodies:
        assert server.client.post("/invocations", json=body).json() == expected


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/models/cancer/predict", b"{not json", 422, "not valid JSON"),
        ("/v1/models/other/predict", b'{"records": [{}]}', 404, "'other' is not served here"),
        ("/v1/models/cancer/predict", b'{"rows": []}', 422, "needs 'records'"),
        (
            "/v1/models/cancer/predict",
            b'{"records": [{"mean radius": 1}]}',
            422,
            "missing column 'mean texture'",
        ),
        ("/v1/feedback", b"[1, 2]", 422, "prediction_id"),
    ],
)
def test_bad_requests_are_4xx_with_a_message(
    server: Any, path: str, body: bytes, status: int, message: str
) -> None:
    r = server.client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["error"]["message"]


def test_each_protocol_answers_bad_requests_with_its_own_error_body(server: Any) -> None:
    r = server.client.post("/invocations", json={"dataframe_split": {"data": [[1, 2]]}})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    assert "Every row needs 30 values" in r.json()["message"]
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1.0]}
    r = server.client.post("/v2/models/cancer/infer", json={"inputs": [tensor]})
    assert r.status_code == 400
    assert r.json() == {"error": "Input 'x' has 1 values; its shape [1, 3] needs 3."}


def test_wrong_types_name_the_column(server: Any, registered: Any) -> None:
    record = registered.X.iloc[0].to_dict()
    r = server.client.post(
        "/v1/models/cancer/predict", json={"records": [{**record, "mean area": "big"}]}
    )
    assert r.status_code == 422 and "Column 'mean area' has string values" in r.text


@pytest.mark.parametrize(
    ("text", "value", "message"),
    [
        (  # JSON has no NaN: a null is how a client sends one
            "null",
            float("nan"),
            "Column 'mean area' has a missing value (NaN or null) in row 0; the model needs a "
            "number in every row of it.",
        ),
        (
            "null",
            None,
            "Column 'mean area' has a missing value (NaN or null) in row 0; the model needs a "
            "number in every row of it.",
        ),
        (
            "1e308",
            1e308,
            "Column 'mean area' has 1e+308 in row 0, beyond what a model takes (±3.4e+38, "
            "float32); send a finite number in that range.",
        ),
        (
            "true",
            True,
            "Column 'mean area' has boolean values (e.g. True); the model expects float. Send "
            "float values for it.",
        ),
    ],
)
def test_the_server_and_load_model_refuse_the_same_row_with_the_same_message(
    server: Any, registered: Any, text: str, value: Any, message: str
) -> None:
    record = registered.X.iloc[0].to_dict()
    body = (
        '{"records": [{'
        + ", ".join(f'"{k}": {text if k == "mean area" else v}' for k, v in record.items())
        + "}]}"
    )
    r = server.client.post(
        "/v1/models/cancer/predict", content=body, headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]["message"]) == (422, message)
    with pytest.raises(InvalidArgument) as caught:
        ferry.load_model("models:/cancer@champion").predict([{**record, "mean area": value}])
    assert str(caught.value) == message


def test_a_body_over_the_limit_is_413(server: Any) -> None:
    r = server.client.post("/v1/models/cancer/predict", content=b"x" * (11 * 1024 * 1024))
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]


def test_health_ready_metrics_and_openapi(server: Any, registered: Any) -> None:
    assert server.client.get("/health").json() == {"status": "ok"}
    assert server.client.get("/ready").status_code == 200
    server.client.post(
        "/v1/models/cancer/predict", json={"records": registered.X.head(4).to_dict("records")}
    )
    text = server.client.get("/metrics").text
    assert (
        'ferry_requests_total{endpoint="v1",model="cancer",route="primary",status="ok",'
        'version="1"} 1.0' in text
    )
    assert 'ferry_rows_total{endpoint="v1",model="cancer",route="primary",version="1"} 4.0' in text
    paths = server.client.get("/openapi.json").json()["paths"]
    assert {"/v1/models/{name}/predict", "/v2/models/{name}/infer", "/invocations"} <= set(paths)


def test_an_alias_move_switches_versions_without_failing_a_request(
    server: Any, registered: Any
) -> None:
    record = {"records": registered.X.head(1).to_dict("records")}
    seen: set[int] = set()
    failures: list[int] = []
    stop = threading.Event()
    answered = {1: threading.Event(), 2: threading.Event()}

    def hammer() -> None:
        import httpx

        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/v1/models/cancer/predict", json=record)
                if r.status_code != 200:
                    failures.append(r.status_code)
                else:
                    seen.add(r.json()["version"])
                    answered[r.json()["version"]].set()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    assert answered[1].wait(20)  # requests are in flight on version 1 before the move
    ferry.set_registered_model_alias("cancer", "champion", 2, reason="switch test")
    answered[2].wait(20)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert seen == {1, 2}


def test_micro_batching_answers_every_caller_with_its_own_row(
    registered: Any, serve: Callable[[Any], Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    app = build_app(
        registered.settings,
        "cancer/1",
        log_predictions=False,
        batching=BatchOptions(max_rows=16, max_wait_ms=5),
    )
    running = serve(app)
    X = registered.X.head(64)
    expected = registered.good.predict(X).tolist()

    def one(i: int) -> Any:
        r = running.client.post(
            "/v1/models/cancer/predict", json={"records": [X.iloc[i].to_dict()]}
        )
        return r.status_code, r.json()["predictions"][0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    assert [a[0] for a in answers] == [200] * 64
    assert [a[1] for a in answers] == expected
    text = running.client.get("/metrics").text
    batches = float(
        next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith("ferry_batch_rows_count")
        )
    )
    assert 0 < batches < 64  # concurrent requests shared predict calls
    assert np.isclose(
        float(
            next(
                line.split()[-1]
                for line in text.splitlines()
                if line.startswith("ferry_batch_rows_sum")
            )
        ),
        64,
    )


def test_micro_batched_requests_are_each_logged_once_with_their_own_request_id(
    registered: Any, serve: Callable[[Any], Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ferryml import predictions

    app = build_app(
        registered.settings, "cancer/1", batching=BatchOptions(max_rows=16, max_wait_ms=5)
    )
    running = serve(app)
    X = registered.X.head(48)

    def one(i: int) -> tuple[int, list[str]]:
        rows = X.iloc[i : i + 1 + i % 2].to_dict("records")  # one row or two
        r = running.client.post(
            "/v1/models/cancer/predict", json={"records": rows}, headers={"X-Request-Id": f"r{i}"}
        )
        return r.status_code, r.json()["ids"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(40)))
    assert [status for status, _ in answers] == [200] * 40
    text = running.client.get("/metrics").text
    batches = next(ln for ln in text.splitlines() if ln.startswith("ferry_batch_rows_count"))
    assert 0 < float(batches.split()[-1]) < 40  # requests shared predict calls
    app.state.services["cancer"].log.flush()
    logged = predictions.load("cancer", settings=registered.settings, with_feedback=False)
    by_id = logged.set_index("id")
    assert sorted(by_id.index) == sorted(i for _, ids in answers for i in ids)  # each once
    for i, (_, ids) in enumerate(answers):
        assert by_id.loc[ids, "request_id"].tolist() == [f"r{i}"] * len(ids)
        assert by_id.loc[ids, "mean radius"].tolist() == X["mean radius"][i : i + len(ids)].tolist()
    assert (logged["latency_ms"] > 0).all() and (logged["version"] == 1).all()


def test_a_batch_whose_logging_fails_once_is_answered_and_logged_once(
    registered: Any, serve: Callable[[Any], Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ferryml import predictions
    from ferryml.errors import StoreUnavailable

    app = build_app(
        registered.settings, "cancer/1", batching=BatchOptions(max_rows=16, max_wait_ms=20)
    )
    running = serve(app)
    log = app.state.services["cancer"].log
    record_many, failed = log.record_many, []

    def failing_once(*args: Any, **kwargs: Any) -> None:
        if not failed and len(args[4]) > 1:  # the first batch of several requests
            failed.append(len(args[4]))
            raise StoreUnavailable("the write-ahead file is full")
        record_many(*args, **kwargs)

    log.record_many = failing_once
    rows = registered.X.head(24).to_dict("records")

    def one(i: int) -> tuple[int, list[str]]:
        r = running.client.post("/v1/models/cancer/predict", json={"records": rows[i : i + 1]})
        return r.status_code, r.json()["ids"]

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(24)))
    assert failed, "no batch of several requests formed"
    assert [status for status, _ in answers] == [200] * 24  # predicted again alone
    log.flush()
    logged = predictions.load("cancer", settings=registered.settings, with_feedback=False)
    assert sorted(logged["id"]) == sorted(i for _, ids in answers for i in ids)  # each once


def test_a_server_whose_model_cannot_load_leaves_no_prediction_log_behind(
    registered: Any,
) -> None:
    with pytest.raises(NotFound, match="nope"):
        build_app(registered.settings, "nope@champion")
    assert list((registered.settings.home / "predictions").glob("*")) == []
    assert "ferryml-prediction-log" not in {t.name for t in threading.enumerate()}


def test_monitor_results_are_prometheus_gauges(server: Any, registered: Any) -> None:
    from ferryml.store.sql import SqlStore
    from ferryml.store.sql_monitors import SqlMonitorStore

    store = SqlMonitorStore(SqlStore(registered.settings.store_url).open())
    store.create("cancer-drift", {"name": "cancer-drift", "deployment": "cancer"})
    store.add_result("cancer-drift", 0, 3_600_000, {"drift_share": 0.4, "rows": 120.0}, {})
    store.close()
    text = server.client.get("/metrics").text
    labels = 'deployment="cancer",metric="{}",monitor="cancer-drift"'
    assert f"ferry_monitor_metric{{{labels.format('drift_share')}}} 0.4" in text
    assert f"ferry_monitor_metric{{{labels.format('rows')}}} 120.0" in text
    at = 'ferry_monitor_window_end_seconds{deployment="cancer",monitor="cancer-drift"} 3600.0'
    assert at in text
