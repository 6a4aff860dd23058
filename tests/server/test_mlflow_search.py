"""MLflow's experiment and registry searches order as MLflow's server does, and refuse what it
refuses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from team_world import TeamServer

BASE = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def client(sqlite_team_server: TeamServer) -> Iterator[httpx.Client]:
    with sqlite_team_server.http("admin") as c:
        yield c


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    answer = client.post(f"{BASE}/{path}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _names(client: httpx.Client, *order_by: str) -> list[str]:
    query = {"filter": "name LIKE 'rm-%'", "order_by": list(order_by)}
    answer = client.get(f"{BASE}/registered-models/search", params=query)
    assert answer.status_code == 200, answer.text
    return [m["name"] for m in answer.json()["registered_models"]]


def test_registered_models_order_by_mlflow_names(client: httpx.Client) -> None:
    for name in ("rm-b-older", "rm-a-newer"):
        _post(client, "registered-models/create", {"name": name})
        time.sleep(0.01)  # timestamps are in milliseconds
    assert _names(client, "name ASC") == ["rm-a-newer", "rm-b-older"]
    assert _names(client, "name DESC") == ["rm-b-older", "rm-a-newer"]
    assert _names(client, "creation_timestamp ASC") == ["rm-b-older", "rm-a-newer"]
    assert _names(client, "creation_timestamp") == ["rm-b-older", "rm-a-newer"]
    assert _names(client, "creation_timestamp DESC") == ["rm-a-newer", "rm-b-older"]
    assert _names(client, "timestamp ASC") == ["rm-b-older", "rm-a-newer"]
    assert _names(client, "last_updated_timestamp DESC") == ["rm-a-newer", "rm-b-older"]

    client.patch(
        f"{BASE}/registered-models/update", json={"name": "rm-b-older", "description": "d"}
    ).raise_for_status()
    assert _names(client, "last_updated_timestamp DESC") == ["rm-b-older", "rm-a-newer"]
    assert _names(client, "timestamp DESC") == ["rm-b-older", "rm-a-newer"]
    assert _names(client, "creation_timestamp DESC") == ["rm-a-newer", "rm-b-older"]


@pytest.mark.parametrize(
    "route", ["registered-models/search", "model-versions/search"], ids=["models", "versions"]
)
@pytest.mark.parametrize("order_by", ["bogus DESC", "creation_time ASC", "name SIDEWAYS"])
def test_unknown_order_is_refused_as_mlflow_does(
    client: httpx.Client, route: str, order_by: str
) -> None:
    answer = client.get(f"{BASE}/{route}", params={"order_by": order_by})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "order_by" in body["message"]


def _versions(client: httpx.Client, *order_by: str) -> list[str]:
    query = {"filter": "name LIKE 'mv-%'", "order_by": list(order_by)}
    answer = client.get(f"{BASE}/model-versions/search", params=query)
    assert answer.status_code == 200, answer.text
    return [f"{v['name']}/{v['version']}" for v in answer.json()["model_versions"]]


def test_model_versions_order_by_mlflow_names(client: httpx.Client) -> None:
    exp = _post(client, "experiments/create", {"name": "versions"})["experiment_id"]
    run = _post(client, "runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
    made = _post(client, "logged-models", {"experiment_id": exp, "source_run_id": run})
    model_id = made["model"]["info"]["model_id"]
    where = f"/api/2.0/mlflow-artifacts/artifacts/{exp}/models/{model_id}/artifacts/MLmodel"
    client.put(where, content=b"flavors:\n  python_function: {}\n").raise_for_status()
    for name in ("mv-m", "mv-n"):
        _post(client, "registered-models/create", {"name": name})
    for name in ("mv-m", "mv-n", "mv-m"):
        _post(client, "model-versions/create", {"name": name, "source": f"models:/{model_id}"})
        time.sleep(0.01)

    assert _versions(client) == ["mv-m/2", "mv-m/1", "mv-n/1"]
    assert _versions(client, "creation_timestamp ASC") == ["mv-m/1", "mv-n/1", "mv-m/2"]
    assert _versions(client, "last_updated_timestamp DESC") == ["mv-m/2", "mv-n/1", "mv-m/1"]
    assert _versions(client, "version_number ASC") == ["mv-m/1", "mv-n/1", "mv-m/2"]
    assert _versions(client, "name DESC", "version_number ASC") == ["mv-n/1", "mv-m/1", "mv-m/2"]
    assert _versions(client, "attributes.name DESC") == ["mv-n/1", "mv-m/2", "mv-m/1"]


def test_logged_models_search_takes_ascii_digit_experiment_ids_only(client: httpx.Client) -> None:
    exp = "0"
    while int(exp) < 10:  # an id of two digits, to write as '1_0'
        exp = _post(client, "experiments/create", {"name": f"ids {exp}"})["experiment_id"]
    _post(client, "logged-models", {"experiment_id": exp})
    assert _post(client, "logged-models/search", {"experiment_ids": [exp]})["models"]
    for other in (f"{exp[0]}_{exp[1:]}", f" {exp} ", f"+{exp}", f"{exp}\n"):
        # int() reads each as the id; MLflow's ids are ASCII digits alone.
        assert _post(client, "logged-models/search", {"experiment_ids": [other]})["models"] == []


def test_an_experiment_id_of_thousands_of_digits_finds_nothing(client: httpx.Client) -> None:
    # int() refuses strings of more than 4,300 digits: that was an HTTP 500.
    huge = "1" * 5000
    assert _post(client, "logged-models/search", {"experiment_ids": [huge]})["models"] == []
    answer = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": huge})
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def _experiments(client: httpx.Client, *order_by: str) -> httpx.Response:
    body = {"filter": "name LIKE 'ex-%'", "order_by": list(order_by), "max_results": 10}
    return client.post(f"{BASE}/experiments/search", json=body)


def test_experiments_order_by_mlflow_names_and_refuse_others(client: httpx.Client) -> None:
    for name in ("ex-b-older", "ex-a-newer"):
        _post(client, "experiments/create", {"name": name})
        time.sleep(0.01)  # timestamps are in milliseconds

    def names(*order_by: str) -> list[str]:
        answer = _experiments(client, *order_by)
        assert answer.status_code == 200, answer.text
        return [e["name"] for e in answer.json()["experiments"]]

    assert names("name ASC") == ["ex-a-newer", "ex-b-older"]
    assert names("attribute.creation_time ASC") == ["ex-b-older", "ex-a-newer"]
    assert names("last_update_time DESC") == ["ex-a-newer", "ex-b-older"]
    assert names("attribute.name DESC") == ["ex-b-older", "ex-a-newer"]
    assert names('"name" DESC') == names("`attributes`.name DESC") == ["ex-b-older", "ex-a-newer"]
    for unknown in ("tags DESC", "__class__", "lifecycle_stage ASC", "tags.name", "metrics.name"):
        answer = _experiments(client, unknown)
        assert answer.status_code == 400, (unknown, answer.text)
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "order_by" in answer.json()["message"]


def test_experiments_order_by_id_as_numbers(client: httpx.Client) -> None:
    # ids on both sides of a change in their count of digits (9 and 10, 99 and 100), where
    # text order and number order part
    made = [int(_post(client, "experiments/create", {"name": "exn-0"})["experiment_id"])]
    if made[0] >= 100:
        pytest.skip("this module's server already holds 100 experiments: no digit boundary near")
    while made[-1] < 10 ** len(str(made[0])):
        created = _post(client, "experiments/create", {"name": f"exn-{len(made)}"})
        made.append(int(created["experiment_id"]))
    body = {
        "filter": "name LIKE 'exn-%'",
        "order_by": ["experiment_id ASC"],
        "max_results": len(made),
    }
    answer = client.post(f"{BASE}/experiments/search", json=body)
    assert answer.status_code == 200, answer.text
    assert [int(e["experiment_id"]) for e in answer.json()["experiments"]] == sorted(made)
