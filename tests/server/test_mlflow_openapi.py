"""MLflow's routes are in the team server's OpenAPI document with typed bodies, and what
they answer is what the document says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount
from team_world import TeamServer

from ferryml.config import Settings
from ferryml.server.team.app import create_team_app

_TYPED = ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    home = tmp_path_factory.mktemp("openapi") / ".ferry"
    return create_team_app(Settings.resolve(home=home, environ={}), auth=False)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _mounted(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the MLflow mounts of a team server answer."""
    served = set()
    for mount in app.router.routes:
        if isinstance(mount, Mount):
            for route in mount.routes:
                if isinstance(route, APIRoute):
                    path = mount.path + route.path_format
                    served |= {(method, path) for method in route.methods}
    return served


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        if "/mlflow" in path:
            for method, operation in item.items():
                yield method.upper(), path, operation


def test_every_served_mlflow_route_is_in_the_openapi_document(
    app: FastAPI, document: dict[str, Any]
) -> None:
    served = _mounted(app)
    documented = {(method, path) for method, path, _ in _operations(document)}
    assert len(served) > 100  # /api/ and /ajax-api/ each
    assert served == documented
    assert ("POST", "/api/2.0/mlflow/runs/log-batch") in documented
    assert ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{path}") in documented
    assert ("GET", "/api/3.0/mlflow/server-info") in documented
    ajax = {(m, p.replace("/ajax-api/", "/api/")) for m, p in served if p.startswith("/ajax-api/")}
    assert ajax == {(m, p) for m, p in served if p.startswith("/api/")}  # the same routes


def _untyped(doc: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """The places under ``schema`` that say nothing of their type: an empty schema, or an
    object with neither properties nor a rule for them."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        yield from _untyped(doc, doc["components"]["schemas"][name], f"{where}>{name}")
        return
    if not any(key in schema for key in _TYPED):
        yield f"{where}: {schema}"
    bare = schema.get("type") == "object" and not schema.get("properties")
    if bare and schema.get("additionalProperties") is not False:
        yield f"{where}: a bare object {schema}"
    for key, sub in schema.get("properties", {}).items():
        yield from _untyped(doc, sub, f"{where}.{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _untyped(doc, sub, where)
    if isinstance(schema.get("items"), dict):
        yield from _untyped(doc, schema["items"], f"{where}[]")


def test_mlflow_requests_and_answers_have_typed_schemas(document: dict[str, Any]) -> None:
    untyped = []
    answers = 0
    for method, path, operation in _operations(document):
        where = f"{method} {path}"
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            untyped += _untyped(document, content["schema"], f"{where} request {media}")
        for parameter in operation.get("parameters", []):
            untyped += _untyped(document, parameter["schema"], f"{where} {parameter['name']}")
        for status, response in operation["responses"].items():
            for media, content in response.get("content", {}).items():
                answers += 1
                untyped += _untyped(document, content["schema"], f"{where} {status} {media}")
        if method != "PUT":  # an artifact upload answers 200 with no body
            assert "content" in operation["responses"]["200"], where
        assert "422" not in operation["responses"], where  # MLflow's bad input is a 400
    assert untyped == []
    assert answers > 300


def test_errors_are_documented_in_mlflows_shape(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/2.0/mlflow/runs/log-metric"]["post"]
    ref = operation["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"]
    error = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(error["required"]) == {"error_code", "message"}


class _Checked:
    """An admin's client of MLflow's routes that checks each JSON answer against the
    schema the server's own OpenAPI document gives for it."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.doc = self.client.get("/openapi.json").json()
        self.schema = schemathesis.openapi.from_dict(self.doc)

    def __call__(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.client.request(method, path, **kwargs)
        assert answer.status_code == 200, (method, path, answer.text)
        paths = self.doc["paths"]
        template = path if path in paths else next(p for p in paths if _matches(p, path))
        # Raises, naming each field that is not as documented (extra ones included).
        self.schema[template][method].validate_response(answer)
        body: dict[str, Any] = answer.json()
        return body


def _matches(template: str, path: str) -> bool:
    parts, given = template.split("/"), path.split("/")
    if template.endswith("{path}"):  # the artifact proxy's path holds slashes
        return given[: len(parts) - 1] == parts[:-1] and len(given) >= len(parts)
    return len(parts) == len(given) and all(
        p == g or p.startswith("{") for p, g in zip(parts, given, strict=True)
    )


@pytest.mark.e2e
def test_mlflow_answers_match_the_openapi_document(sqlite_team_server: TeamServer) -> None:
    with sqlite_team_server.http("admin") as client:
        _walk_every_route(_Checked(client))


def _walk_every_route(api: _Checked) -> None:
    base = "/api/2.0/mlflow"
    api("POST", f"{base}/experiments/create", json={"name": "doc0"})
    exp = api("POST", f"{base}/experiments/create", json={"name": "doc"})["experiment_id"]
    tag = {"experiment_id": exp, "key": "team", "value": "a"}
    api("POST", f"{base}/experiments/set-experiment-tag", json=tag)
    api("GET", f"{base}/experiments/get", params={"experiment_id": exp})
    api("GET", f"{base}/experiments/get-by-name", params={"experiment_name": "doc"})
    assert api("POST", f"{base}/experiments/search", json={"max_results": 1})["next_page_token"]
    api("GET", f"{base}/experiments/search")
    tags = [{"key": "mlflow.user", "value": "bob"}]
    run = api("POST", f"{base}/runs/create", json={"experiment_id": exp, "tags": tags})
    run_id = run["run"]["info"]["run_id"]
    ref = {"run_id": run_id}
    metric = {"key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
    api("POST", f"{base}/runs/log-metric", json={**ref, **metric})
    api("POST", f"{base}/runs/log-metric", json={**ref, "key": "gap", "value": "NaN"})
    api("POST", f"{base}/runs/log-parameter", json={**ref, "key": "alpha", "value": "0.1"})
    batch = {
        "metrics": [{"key": "loss", "value": 0.4, "timestamp": 2, "step": 1}],
        "params": [{"key": "beta", "value": "2"}],
        "tags": [{"key": "t", "value": "v"}],
    }
    api("POST", f"{base}/runs/log-batch", json={**ref, **batch})
    dataset = {"name": "iris", "digest": "abc", "source_type": "code", "source": "{}"}
    inputs = [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": dataset}]
    api("POST", f"{base}/runs/log-inputs", json={**ref, "datasets": inputs})
    proxy = "/api/2.0/mlflow-artifacts/artifacts"
    folder = f"{exp}/{run_id}/artifacts"
    assert api.client.put(f"{proxy}/{folder}/d/a.txt", content=b"x").status_code == 200
    listed = api("GET", proxy, params={"path": folder})
    assert listed == {"files": [{"path": "d", "is_dir": True}]}
    assert api("GET", f"{base}/artifacts/list", params={**ref, "path": "d"})["files"]
    api("GET", "/api/3.0/mlflow/server-info")
    got = api("GET", f"{base}/runs/get", params=ref)["run"]
    assert {m["key"] for m in got["data"]["metrics"]} == {"loss", "gap"}
    assert got["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "iris"
    search = {"experiment_ids": [exp], "filter": "metrics.loss < 1"}
    assert len(api("POST", f"{base}/runs/search", json=search)["runs"]) == 1
    history = {**ref, "metric_key": "loss", "max_results": 1}
    assert api("GET", f"{base}/metrics/get-history", params=history)["next_page_token"]

    made = {"experiment_id": exp, "source_run_id": run_id, "params": [{"key": "p", "value": "1"}]}
    model_id = api("POST", f"{base}/logged-models", json=made)["model"]["info"]["model_id"]
    api("POST", f"{base}/runs/outputs", json={**ref, "models": [{"model_id": model_id, "step": 0}]})
    mlmodel = b"flavors:\n  python_function: {}\n"
    where = f"{proxy}/{exp}/models/{model_id}/artifacts/MLmodel"
    assert api.client.put(where, content=mlmodel).status_code == 200
    api("PATCH", f"{base}/logged-models/{model_id}", json={"status": "LOGGED_MODEL_READY"})
    api(
        "PATCH",
        f"{base}/logged-models/{model_id}/tags",
        json={"tags": [{"key": "k", "value": "v"}]},
    )
    api("GET", f"{base}/logged-models/{model_id}")
    order = [{"field_name": "name", "ascending": True}]
    found = api(
        "POST", f"{base}/logged-models/search", json={"experiment_ids": [exp], "order_by": order}
    )
    assert [m["info"]["model_id"] for m in found["models"]] == [model_id]
    api("POST", f"{base}/runs/update", json={**ref, "status": "FINISHED", "end_time": 5})
    assert api("GET", f"{base}/runs/get", params=ref)["run"]["outputs"]["model_outputs"]

    for name in ("doc-a", "doc-b"):
        api("POST", f"{base}/registered-models/create", json={"name": name, "description": "d"})
        api(
            "POST",
            f"{base}/registered-models/set-tag",
            json={"name": name, "key": "k", "value": "v"},
        )
    version = {"name": "doc-a", "source": f"models:/{model_id}", "model_id": model_id}
    made_version = api("POST", f"{base}/model-versions/create", json=version)["model_version"]
    assert made_version["run_id"] == run_id
    one = {"name": "doc-a", "version": "1"}
    api("POST", f"{base}/registered-models/alias", json={**one, "alias": "champion"})
    api("GET", f"{base}/registered-models/alias", params={"name": "doc-a", "alias": "champion"})
    api("POST", f"{base}/model-versions/set-tag", json={**one, "key": "k", "value": "v"})
    api("PATCH", f"{base}/model-versions/update", json={**one, "description": "better"})
    api("GET", f"{base}/model-versions/get", params=one)
    api("GET", f"{base}/model-versions/get-download-uri", params=one)
    api("GET", f"{base}/model-versions/search", params={"filter": "name='doc-a'"})
    api("POST", f"{base}/registered-models/get-latest-versions", json={"name": "doc-a"})
    api("PATCH", f"{base}/registered-models/update", json={"name": "doc-a", "description": "e"})
    assert api("GET", f"{base}/registered-models/get", params={"name": "doc-a"})[
        "registered_model"
    ]["aliases"] == [{"alias": "champion", "version": "1"}]
    # order_by is read from the query string, as MLflow's client sends it.
    for direction, names in (("ASC", ["doc-a", "doc-b"]), ("DESC", ["doc-b", "doc-a"])):
        query = {"filter": "name LIKE 'doc-%'", "order_by": f"name {direction}"}
        page = api("GET", f"{base}/registered-models/search", params=query)
        assert [m["name"] for m in page["registered_models"]] == names
    api("DELETE", f"{base}/registered-models/alias", json={"name": "doc-a", "alias": "champion"})
    api("DELETE", f"{base}/model-versions/delete-tag", json={**one, "key": "k"})
    api("DELETE", f"{base}/model-versions/delete", json=one)
    api("DELETE", f"{base}/registered-models/delete-tag", json={"name": "doc-b", "key": "k"})
    api("DELETE", f"{base}/registered-models/delete", json={"name": "doc-b"})
    api("DELETE", f"{base}/logged-models/{model_id}/tags/k")
    api("POST", f"{base}/runs/delete-tag", json={**ref, "key": "t"})
    api("POST", f"{base}/runs/delete", json=ref)
    api("POST", f"{base}/runs/restore", json=ref)
    api(
        "POST",
        f"{base}/experiments/delete-experiment-tag",
        json={"experiment_id": exp, "key": "team"},
    )
    api("POST", f"{base}/experiments/update", json={"experiment_id": exp, "new_name": "doc2"})
    api("POST", f"{base}/experiments/delete", json={"experiment_id": exp})
    api("POST", f"{base}/experiments/restore", json={"experiment_id": exp})


def test_the_document_keeps_the_apps_own_settings(tmp_path: Path) -> None:
    app = create_team_app(Settings.resolve(home=tmp_path / ".ferry", environ={}), auth=False)
    app.description = "The team server."
    app.openapi_tags = [{"name": "mlflow", "description": "MLflow's REST API."}]
    app.servers = [{"url": "/"}]
    doc = app.openapi()
    assert doc["info"]["description"] == "The team server."
    assert doc["tags"] == [{"name": "mlflow", "description": "MLflow's REST API."}]
    assert doc["servers"] == [{"url": "/"}]
    assert "/api/2.0/mlflow/runs/log-batch" in doc["paths"]
