"""The real mlflow client (pinned, in its own venv) against a real ``ferry server``: what it
logs is ferryml's, what ferryml logs it reads, and every route it defines answers JSON."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from team_world import TeamServer, free_port

from ferryml.config import Settings
from ferryml.registry.models import Registry
from ferryml.store.artifacts import ArtifactStore
from ferryml.store.records import ArtifactRecord, MetricRecord, ParamRecord, TagRecord
from ferryml.store.sql import SqlStore
from mlflow_world import run_client

pytestmark = pytest.mark.e2e

FERRY = str(Path(sys.executable).with_name("ferry"))
BULK_RUNS = 1050
# The endpoints the recorded mlflow 3.17.2 traffic used (shared/protocols/mlflow-rest.md §7).
USED_BY_CLIENT = {
    ("GET", "/api/2.0/mlflow/experiments/get-by-name"),
    ("GET", "/api/2.0/mlflow/experiments/get"),
    ("GET", "/api/2.0/mlflow/runs/get"),
    ("POST", "/api/2.0/mlflow/experiments/create"),
    ("POST", "/api/2.0/mlflow/runs/create"),
    ("POST", "/api/2.0/mlflow/runs/update"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>"),
    ("POST", "/api/2.0/mlflow/runs/log-parameter"),
    ("POST", "/api/2.0/mlflow/runs/log-metric"),
    ("POST", "/api/2.0/mlflow/runs/log-batch"),
    ("POST", "/api/2.0/mlflow/runs/log-inputs"),
    ("POST", "/api/2.0/mlflow/logged-models"),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}"),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}"),
    ("POST", "/api/2.0/mlflow/runs/outputs"),
    ("POST", "/api/2.0/mlflow/logged-models/search"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>"),
    ("POST", "/api/2.0/mlflow/runs/set-tag"),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}/tags"),
    ("POST", "/api/2.0/mlflow/registered-models/create"),
    ("GET", "/api/2.0/mlflow/registered-models/get"),
    ("GET", "/api/2.0/mlflow/registered-models/search"),
    ("POST", "/api/2.0/mlflow/registered-models/alias"),
    ("GET", "/api/2.0/mlflow/registered-models/alias"),
    ("DELETE", "/api/2.0/mlflow/registered-models/alias"),
    ("DELETE", "/api/2.0/mlflow/registered-models/delete"),
    ("POST", "/api/2.0/mlflow/model-versions/create"),
    ("GET", "/api/2.0/mlflow/model-versions/search"),
    ("POST", "/api/2.0/mlflow/model-versions/set-tag"),
    ("PATCH", "/api/2.0/mlflow/model-versions/update"),
    ("GET", "/api/2.0/mlflow/model-versions/get-download-uri"),
    ("DELETE", "/api/2.0/mlflow/model-versions/delete"),
    ("POST", "/api/2.0/mlflow/runs/search"),
    ("POST", "/api/2.0/mlflow/experiments/search"),
    ("GET", "/api/2.0/mlflow/metrics/get-history"),
    ("GET", "/api/2.0/mlflow/model-versions/get"),
    ("POST", "/api/2.0/mlflow/runs/delete"),
}


@pytest.fixture(scope="module")
def server(sqlite_team_server: TeamServer) -> TeamServer:
    return sqlite_team_server


def _env(server: TeamServer, role: str = "writer") -> dict[str, str]:
    env = server.env()
    env.update(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_TOKEN=server.tokens[role])
    return env


def _ferry_run(server: TeamServer) -> str:
    """A run logged by ferryml (its store and artifact store), for the mlflow client."""
    store = SqlStore(server.store_url).open()
    artifacts = ArtifactStore(server.artifacts_url).open()
    try:
        experiment = store.create_experiment("from-ferryml")
        run_id = store.create_run(
            experiment, run_name="ferry-run", start_time=1_700_000_000_000, user="writer"
        ).run_id
        blob = artifacts.put_bytes(b"written by ferryml")
        store.write_records(
            [
                ParamRecord(run_id, "lr", "0.1"),
                TagRecord(run_id, "origin", "ferryml"),
                MetricRecord(run_id, "rmse", 3, 1_700_000_000_003, 0.25, False),
                ArtifactRecord(run_id, "out/report.txt", blob.digest, blob.size),
            ]
        )
        bulk = store.create_experiment("bulk")
        ids = [
            store.create_run(bulk, run_name=f"r{i}", start_time=i, user="writer").run_id
            for i in range(BULK_RUNS)
        ]
        store.write_records(
            [MetricRecord(run, "i", 0, 0, float(i), False) for i, run in enumerate(ids)]
        )
        return run_id
    finally:
        store.close()


def test_mlflow_client_runs_are_ferryml_runs_and_back(server: TeamServer, tmp_path: Path) -> None:
    ferry_run = _ferry_run(server)
    out = run_client("tracking.py", _env(server), ferry_run, "bulk", cwd=tmp_path)

    store = SqlStore(server.store_url).open()
    try:
        run = store.get_run(out["run_id"])
        assert run.info.run_name == "parent" and run.info.status.value == "FINISHED"
        assert run.info.user == "writer"  # the token's user, not the client's word
        assert run.data.params["alpha"] == "0.5" and len(run.data.params) == 154
        assert [m.value for m in store.get_metric_history(out["run_id"], "loss")] == [
            1.0 / (s + 1) for s in range(5)
        ]
        assert {store.get_run_info(c).parent_run_id for c in out["children"]} == {out["run_id"]}
        paths = {a.path for a in store.list_artifacts(out["run_id"])}
        assert {"notes.txt", "docs/notes.txt", "tables/inner/b.csv", "fig.png"} <= paths
        assert [(i.name, i.context) for i in run.inputs] == [("train-frame", "training")]
        experiment = store.get_experiment(out["experiment_id"])
        assert experiment.tags == {"team": "ml"}
    finally:
        store.close()
    listed = subprocess.run(
        [FERRY, "runs", "list", "--all", "--json", "-e", "mlflow-compat"],
        env=server.client_env("reader"),
        capture_output=True,
        text=True,
        check=True,
    )
    names = {r["info"]["run_name"] for r in json.loads(listed.stdout)["runs"]}
    assert {"parent", "child-a", "child-b", "failing"} <= names


def test_models_logged_by_mlflow_are_registered_loaded_and_served(
    server: TeamServer, tmp_path: Path
) -> None:
    env = _env(server, "maintainer")
    # Basic credentials: the user's name and a token of theirs as the password.
    del env["MLFLOW_TRACKING_TOKEN"]
    env.update(
        MLFLOW_TRACKING_USERNAME="maintainer", MLFLOW_TRACKING_PASSWORD=server.tokens["maintainer"]
    )
    out = run_client("models.py", env, "iris", cwd=tmp_path)

    settings = Settings.resolve(
        home=server.home, store=server.store_url, artifacts=server.artifacts_url, environ={}
    )
    registry = Registry(settings)
    try:
        version = registry.version("iris@champion")
        assert (version.version, version.flavor, version.run_id) == (1, "mlflow", out["run_id"])
        model = registry.load("models:/iris@champion")
        assert model.signature is not None and model.signature.columns[0] == "sepal_length"
        assert model.predict(out["rows"]).tolist() == out["expected"]
    finally:
        registry.close()

    port = free_port()
    serving = subprocess.Popen(
        [FERRY, "serve", "iris@champion", "--port", str(port), "--no-log"],
        env={**server.client_env("reader"), "FERRY_HOME": str(tmp_path / "serve-home")},
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while serving.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            assert serving.stderr is not None
            serving.kill()
            raise AssertionError(f"ferry serve did not start: {serving.stderr.read()!r}")
        body = {"dataframe_records": out["rows"]}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == out["expected"]
    finally:
        serving.terminate()
        serving.wait(30)
        assert serving.stderr is not None
        serving.stderr.close()


def test_every_route_the_client_defines_answers_mlflow_json(server: TeamServer) -> None:
    rows = run_client("routes.py", _env(server, "reader"))
    served = {(m, p) for m, p, status, code in rows if code != "ENDPOINT_NOT_FOUND"}
    not_served = sorted(f"{m} {p}" for m, p, _, code in rows if code == "ENDPOINT_NOT_FOUND")
    answers = {f"{m} {p}": (status, code) for m, p, status, code in rows}
    assert all(status < 500 for status, _ in answers.values()), answers
    assert all(code != "not JSON" for _, code in answers.values()), answers
    # Every route the client used in the recorded traffic is served...
    assert served >= USED_BY_CLIENT, sorted(USED_BY_CLIENT - served)
    # ...and the rest (traces, prompts, webhooks, scorers, gateway, ...) say so in JSON.
    assert len(rows) > 150 and len(served) >= 55, (len(rows), len(served))
    assert all(answers[r] == (404, "ENDPOINT_NOT_FOUND") for r in not_served)


def _mlflow(
    server: TeamServer, method: str, path: str, role: str | None = "writer", **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[role]}"} if role else {}
    headers.update(kw.pop("headers", {}))
    return httpx.request(
        method, f"{server.url}/api/2.0/mlflow/{path}", headers=headers, timeout=30, **kw
    )


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error_code"]


def test_credentials_map_to_ferryml_users_and_roles(server: TeamServer) -> None:
    assert _error(_mlflow(server, "GET", "experiments/search", role=None)) == (
        401,
        "UNAUTHENTICATED",
    )
    assert _error(
        _mlflow(server, "POST", "experiments/create", role="reader", json={"name": "nope"})
    ) == (403, "PERMISSION_DENIED")
    searched = _mlflow(server, "POST", "experiments/search", role="reader", json={})
    assert searched.status_code == 200
    basic = base64.b64encode(f"writer:{server.tokens['writer']}".encode()).decode()
    created = httpx.post(
        f"{server.url}/api/2.0/mlflow/experiments/create",
        headers={"Authorization": f"Basic {basic}"},
        json={"name": "by-basic"},
    )
    assert created.status_code == 200 and created.json()["experiment_id"]
    wrong = base64.b64encode(f"admin:{server.tokens['writer']}".encode()).decode()
    answer = httpx.get(
        f"{server.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=by-basic",
        headers={"Authorization": f"Basic {wrong}"},
    )
    assert _error(answer) == (401, "UNAUTHENTICATED")
    # Moving an alias needs a maintainer, as on ferryml's own routes.
    alias = {"name": "iris", "alias": "x", "version": "1"}
    assert _error(_mlflow(server, "POST", "registered-models/alias", json=alias)) == (
        403,
        "PERMISSION_DENIED",
    )


def test_bad_requests_get_mlflow_errors_never_html_or_5xx(server: TeamServer) -> None:
    run = _mlflow(server, "POST", "runs/create", json={"experiment_id": "0"}).json()["run"]
    run_id = run["info"]["run_id"]
    assert run["info"]["artifact_uri"].endswith(f"/{run_id}/artifacts")
    cases = [
        (
            ("POST", "runs/create"),
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (("POST", "experiments/create"), {"json": {}}, (400, "INVALID_PARAMETER_VALUE")),
        (("GET", "runs/get"), {"params": {"run_id": "0" * 32}}, (404, "RESOURCE_DOES_NOT_EXIST")),
        (
            ("GET", "experiments/get"),
            {"params": {"experiment_id": "999999"}},
            (404, "RESOURCE_DOES_NOT_EXIST"),
        ),
        (
            ("POST", "runs/log-metric"),
            {"json": {"run_id": run_id, "key": "m", "value": "abc"}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            ("POST", "runs/log-metric"),
            {"json": {"run_id": run_id, "key": "../m", "value": 1}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            ("POST", "runs/log-metric"),
            {"json": {"run_id": run_id, "key": "m", "value": 1, "step": 2**64}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            ("POST", "runs/search"),
            {"json": {"experiment_ids": ["0"], "filter": "foo.bar = 1"}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            ("POST", "runs/search"),
            {"json": {"experiment_ids": ["0"], "page_token": "garbage"}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            ("POST", "runs/update"),
            {"json": {"run_id": run_id, "status": "DANCING"}},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        # Found by the fuzz test: '²' passes str.isdigit() and int() refuses it; an id past
        # the INTEGER column overflowed the driver.
        *[
            (
                ("POST", "runs/search"),
                {"json": {"experiment_ids": ["0"], "filter": f"attributes.experiment_id = '{e}'"}},
                (400, "INVALID_PARAMETER_VALUE"),
            )
            for e in ("²", "9" * 20)
        ],
        (("POST", "no-such-route"), {"json": {}}, (404, "ENDPOINT_NOT_FOUND")),
        (("DELETE", "runs/get"), {}, (404, "ENDPOINT_NOT_FOUND")),
    ]
    for (method, path), kw, expected in cases:
        answer = _mlflow(server, method, path, **kw)
        assert _error(answer) == expected, (method, path, answer.text)
    put = httpx.put(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/../../x",
        headers={"Authorization": f"Bearer {server.tokens['writer']}"},
        content=b"x",
    )
    assert put.status_code in (400, 404) and "error_code" in put.json()
    history = _mlflow(
        server, "GET", "metrics/get-history", params={"run_id": "0" * 32, "metric_key": "m"}
    )
    assert (history.status_code, history.json()) == (200, {})
    # Ids that name no experiment find no logged models (the fuzz test's find, as above).
    models = _mlflow(
        server, "POST", "logged-models/search", json={"experiment_ids": ["¹", "9" * 20]}
    )
    assert (models.status_code, models.json()) == (200, {"models": []})


def test_values_for_a_deleted_or_missing_run_are_refused_and_none_stored(
    server: TeamServer,
) -> None:
    run_id = _mlflow(server, "POST", "runs/create", json={"experiment_id": "0"}).json()["run"][
        "info"
    ]["run_id"]
    metric = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    assert _mlflow(server, "POST", "runs/log-metric", json=metric).status_code == 200
    assert _mlflow(server, "POST", "runs/delete", json={"run_id": run_id}).status_code == 200
    refused = [
        ("runs/log-metric", {**metric, "step": 1}),
        ("runs/log-batch", {"run_id": run_id, "metrics": [{**metric, "step": 2}]}),
        ("runs/log-batch", {"run_id": run_id}),
        ("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}),
        ("runs/set-tag", {"run_id": run_id, "key": "t", "value": "1"}),
    ]
    for path, body in refused:
        answer = _mlflow(server, "POST", path, json=body)
        assert _error(answer) == (400, "INVALID_PARAMETER_VALUE"), (path, answer.text)
        assert "must be in the 'active' state" in answer.json()["message"]
    missing = {**metric, "run_id": "0" * 32}
    for path, body in (("runs/log-metric", missing), ("runs/log-batch", {"run_id": "0" * 32})):
        assert _error(_mlflow(server, "POST", path, json=body)) == (404, "RESOURCE_DOES_NOT_EXIST")

    assert _mlflow(server, "POST", "runs/restore", json={"run_id": run_id}).status_code == 200
    assert _mlflow(server, "POST", "runs/log-metric", json={**metric, "step": 3}).status_code == 200
    run = _mlflow(server, "GET", "runs/get", params={"run_id": run_id}).json()["run"]
    assert "params" not in run["data"] and "t" not in {t["key"] for t in run["data"]["tags"]}
    history = _mlflow(
        server, "GET", "metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
    )
    assert [m["step"] for m in history.json()["metrics"]] == [0, 3]


def test_search_answers_each_latest_value_with_its_step_and_time(server: TeamServer) -> None:
    experiment = _mlflow(server, "POST", "experiments/create", json={"name": "latest"}).json()
    body = {"experiment_id": experiment["experiment_id"], "run_name": "r"}
    run_id = _mlflow(server, "POST", "runs/create", json=body).json()["run"]["info"]["run_id"]
    metrics = [
        {"key": "m", "value": 0.5, "timestamp": 10, "step": 0},
        {"key": "m", "value": 0.1 + 0.2, "timestamp": 20, "step": 7},
        {"key": "nan", "value": "NaN", "timestamp": 30, "step": 1},
        {"key": "inf", "value": "-Infinity", "timestamp": 40, "step": 2},
    ]
    batch = {"run_id": run_id, "metrics": metrics, "params": [{"key": "p", "value": "x"}]}
    assert _mlflow(server, "POST", "runs/log-batch", json=batch).status_code == 200

    search = {"experiment_ids": [experiment["experiment_id"]], "order_by": ["metrics.m DESC"]}
    (found,) = _mlflow(server, "POST", "runs/search", json=search).json()["runs"]
    assert sorted(found["data"]["metrics"], key=lambda m: m["key"]) == [
        {"key": "inf", "value": "-Infinity", "timestamp": 40, "step": 2},
        {"key": "m", "value": 0.30000000000000004, "timestamp": 20, "step": 7},
        {"key": "nan", "value": "NaN", "timestamp": 30, "step": 1},
    ]
    assert found["data"]["params"] == [{"key": "p", "value": "x"}]
    tags = {t["key"]: t["value"] for t in found["data"]["tags"]}
    assert tags["mlflow.runName"] == "r" and tags["mlflow.user"] == "writer"
    assert found["info"]["run_name"] == "r" and "end_time" not in found["info"]
    assert (found["inputs"], found["outputs"]) == ({}, {})
