"""Failed prediction requests are counted per deployment, route, status and second beside
the prediction log: bad input, a failing model and overload each reach the deployment's
traffic figures, with the last error's text; nothing else reads them, and memory stays
bounded when the store cannot be reached."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import StoreUnavailable
from ferryml.predictions import load
from ferryml.server.main import build_app
from ferryml.serving.deployments import Deployments
from ferryml.serving.errorlog import RequestErrorLog
from ferryml.serving.traffic import deployment_traffic
from ferryml.store.factory import open_request_error_store
from ferryml.store.request_errors import ERROR_TEXT_LIMIT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from failing_world import register_failing_deployment, script_function  # noqa: E402


@pytest.fixture
def deployed(sqlite_settings: Settings) -> Iterator[Settings]:
    register_failing_deployment(sqlite_settings, "scoring")
    yield sqlite_settings
    ferry.configure(home=sqlite_settings.home)


def test_bad_input_a_failing_model_and_overload_are_counted_per_route(
    deployed: Settings, serve: Any
) -> None:
    running = serve(build_app(deployed, deployment="scoring"))
    http = running.client
    predict = "/v1/models/scoring/predict"
    answered = [http.post(predict, json={"records": [{"a": 1.0, "b": 0.0}]}) for _ in range(6)]
    assert {r.status_code for r in answered} == {200}
    refused = [http.post(predict, json={"records": [{"a": -1.0, "b": 0.0}]}) for _ in range(3)]
    assert {r.status_code for r in refused} == {422}
    failed = [http.post(predict, json={"records": [{"a": -100, "b": 0.0}]}) for _ in range(4)]
    assert {r.status_code for r in failed} == {503}
    bad = [
        http.post(predict, content=b"{not json"),
        http.post("/v2/models/scoring/infer", json={"no": "inputs"}),
        http.post("/invocations", json={"dataframe_records": [{"a": 1.0}]}),  # no b: routed
    ]
    assert [r.status_code for r in bad] == [422, 400, 400]
    assert http.post("/v1/models/elsewhere/predict", json={}).status_code == 404  # not ours
    assert http.get("/v2/models/scoring/versions/x").status_code == 404  # not a prediction
    running.app.state.request_errors.flush()
    running.app.state.services["scoring"].log.flush()

    routes = {r.route: r for r in deployment_traffic("scoring", span_s=60, settings=deployed)}
    assert set(routes) == {"", "v1", "v2"}
    routed = [routes["v1"], routes["v2"]]
    assert sum(r.requests for r in routed) == 14  # 6 answered, 4 refused, 4 failed
    assert (sum(r.errors_4xx for r in routed), sum(r.errors_5xx for r in routed)) == (4, 4)
    for r in routed:
        assert r.error_rate == pytest.approx(r.errors / r.requests)
        assert sum(b.errors for b in r.buckets) == r.errors
        assert sum(b.requests for b in r.buckets) == r.requests
    texts = {r.last_error for r in routed if r.errors}
    assert texts and all(
        t == "The feature store is unreachable." or "b" in t or "negative a" in t for t in texts
    )
    unrouted = routes[""]  # bodies no route could read
    assert (unrouted.requests, unrouted.errors_4xx, unrouted.errors_5xx) == (2, 2, 0)
    assert unrouted.error_rate == 1.0 and unrouted.p99_ms is None
    assert unrouted.last_error == "An inference request needs 'inputs': a list of tensors."

    # the prediction log holds the answered predictions alone
    assert len(load("scoring", settings=deployed, with_feedback=False)) == 6


def test_requests_shed_by_overload_are_counted_before_any_route(
    deployed: Settings, serve: Any
) -> None:
    app = build_app(deployed, deployment="scoring", max_queue_wait_ms=0.000_001)
    running = serve(app)
    shed = [
        running.client.post("/v1/models/scoring/predict", json={"records": [{"a": 1, "b": 0}]})
        for _ in range(3)
    ]
    assert [r.status_code for r in shed] == [503] * 3
    app.state.request_errors.flush()
    (route,) = deployment_traffic("scoring", span_s=60, settings=deployed)
    assert (route.route, route.errors_5xx, route.error_rate) == ("", 3, 1.0)
    assert route.last_error is not None and route.last_error.startswith("The server is overloaded")


STRICT = """
def strict(frame):
    if (frame["b"] > 100).any():
        raise ValueError("b is over 100")
    return frame["a"].tolist()
"""


def test_a_shadows_failures_are_counted_on_its_route(deployed: Settings, serve: Any) -> None:
    example = pd.DataFrame({"a": [1.0], "b": [0.5]})
    with ferry.start_run():  # version 3: refuses what the primary takes
        model = script_function(STRICT, "strict")
        ferry.log_model(model, input_example=example, registered_model_name="scoring")
    manager = Deployments(deployed)
    try:
        manager.create("shadowed", "scoring", 1, shadow=3)
    finally:
        manager.close()
    app = build_app(deployed, deployment="shadowed")
    running = serve(app)
    body = {"records": [{"a": 1.0, "b": 500.0}]}
    answers = [running.client.post("/v1/models/shadowed/predict", json=body) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * 3  # the client never sees the shadow
    stored, deadline = 0, time.monotonic() + 30
    while stored < 3 and time.monotonic() < deadline:  # the shadows run after the answers
        stored += app.state.request_errors.flush()
        time.sleep(0.05)
    app.state.services["shadowed"].log.flush()
    routes = {r.route: r for r in deployment_traffic("shadowed", span_s=60, settings=deployed)}
    assert (routes["v3"].errors_4xx, routes["v3"].errors, routes["v1"].errors) == (3, 3, 0)
    assert routes["v1"].requests == 3
    assert routes["v3"].last_error == "The model could not predict this input: b is over 100"


def test_counts_are_stored_once_per_second_and_error_texts_are_cut(
    sqlite_settings: Settings,
) -> None:
    errors = RequestErrorLog(sqlite_settings, flush_interval=3600).open()
    try:
        for i in range(1000):
            errors.record("d", "v1", 1, 500, f"boom {i} " + "x" * 500, time=100.5)
        errors.record("d", "v1", 1, 422, "bad", time=101.0)
        assert errors.flush() == 1001
        assert errors.flush() == 0
    finally:
        errors.close()
    store = open_request_error_store(sqlite_settings)
    try:
        rows = store.latest_request_errors("d", since=0)
    finally:
        store.close()
    assert [(r.status, r.time, r.count) for r in rows] == [(422, 101_000, 1), (500, 100_000, 1000)]
    assert rows[1].error.startswith("boom 999 ") and len(rows[1].error) == ERROR_TEXT_LIMIT
    assert not list((sqlite_settings.home / "request-errors").iterdir())  # all stored


def test_memory_stays_bounded_while_the_store_is_unreachable(tmp_path: Any) -> None:
    settings = Settings(
        home=tmp_path / "home",
        store_url="http://127.0.0.1:9/",  # nothing listens
        server_retry=0.2,
        artifacts_url=(tmp_path / "artifacts").as_uri(),
    )
    errors = RequestErrorLog(settings, flush_interval=3600, max_keys=3).open()
    for second in range(10):
        errors.record("d", "v1", 1, 500, "boom", time=float(second))
    errors.record("d", "v1", 1, 500, "boom", time=0.0)  # a key held already: still counted
    assert errors.dropped == 7
    errors.close()  # the store is unreachable: the files stay for the next process
    assert list((tmp_path / "home" / "request-errors").glob("*.predwal"))


def _stored(settings: Settings) -> list[Any]:
    store = open_request_error_store(settings)
    try:
        return store.latest_request_errors("d", since=0)
    finally:
        store.close()


def _store_down(errors: RequestErrorLog) -> Any:
    """Make the log's store refuse every write until the returned function is called."""
    store = errors._opened()
    working = store.create_request_errors

    def down(rows: Any) -> None:
        raise StoreUnavailable("the database is restarting")

    store.create_request_errors = down
    return lambda: setattr(store, "create_request_errors", working)


def test_counts_survive_a_store_that_fails_for_a_while(sqlite_settings: Settings) -> None:
    errors = RequestErrorLog(sqlite_settings, flush_interval=3600).open()
    try:
        back = _store_down(errors)
        for _ in range(4):
            errors.record("d", "v1", 1, 500, "boom", time=100.0)
        with pytest.raises(StoreUnavailable):
            errors.flush()
        for _ in range(5):
            errors.record("d", "v1", 1, 500, "boom", time=100.0)
        back()
        assert errors.flush() == 9
        for _ in range(3):  # the same second again, after the outage
            errors.record("d", "v1", 1, 500, "boom", time=100.0)
        assert errors.flush() == 3
    finally:
        errors.close()
    assert sum(r.count for r in _stored(sqlite_settings)) == 12


def test_an_error_text_echoing_a_nul_is_stored_and_counting_goes_on(
    sqlite_settings: Settings,
) -> None:
    errors = RequestErrorLog(sqlite_settings, flush_interval=3600).open()
    try:
        errors.record("d", "v1", 1, 422, "Columns given: a\x00", time=100.0)
        assert errors.flush() == 1
        errors.record("d", "v1", 1, 422, "bad", time=101.0)
        assert errors.flush() == 1
    finally:
        errors.close()
    assert [r.error for r in _stored(sqlite_settings)] == ["bad", "Columns given: a\ufffd"]


def test_each_route_shows_its_own_last_error_however_busy_the_others_are(
    sqlite_settings: Settings,
) -> None:
    errors = RequestErrorLog(sqlite_settings, flush_interval=3600).open()
    try:
        errors.record("d", "quiet", 1, 422, "the quiet route's error", time=1000.0)
        for second in range(1001, 1301):  # more newer rows than any page of them
            errors.record("d", "busy", 2, 500, f"busy {second}", time=float(second))
        errors.flush()
    finally:
        errors.close()
    routes = {
        r.route: r
        for r in deployment_traffic("d", span_s=900, settings=sqlite_settings, now=1400.0)
    }
    assert routes["quiet"].last_error == "the quiet route's error"
    assert routes["busy"].last_error == "busy 1300"


def test_an_outage_holds_two_files_open_whatever_its_length(sqlite_settings: Settings) -> None:
    errors = RequestErrorLog(sqlite_settings, flush_interval=3600).open()
    folder = sqlite_settings.home / "request-errors"
    try:
        back = _store_down(errors)
        for second in range(50):  # a failure a second, a flush a second
            errors.record("d", "v1", 1, 500, "boom", time=float(second))
            with pytest.raises(StoreUnavailable):
                errors.flush()
        assert len(list(folder.glob("*.predwal"))) == 2
        back()
        assert errors.flush() == 50
    finally:
        errors.close()
    assert sum(r.count for r in _stored(sqlite_settings)) == 50
    assert not list(folder.glob("*.predwal"))
