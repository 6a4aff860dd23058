"""Schemathesis against the team server's OpenAPI document (ferryml's routes and MLflow's),
with an admin's token: no generated request makes it answer 5xx."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from team_world import TeamServer

pytestmark = pytest.mark.e2e


def test_no_generated_request_gets_a_5xx(sqlite_team_server: TeamServer) -> None:
    # The checks at the edge are the same over either database; PostgreSQL's own limit
    # (no NUL in text) has a test of its own in tests/store.
    server = sqlite_team_server
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    # /ajax-api/ serves the same handlers as /api/ (test_mlflow_openapi.py): fuzzed once.
    found = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in found if not op.path.startswith("/ajax-api/")]
    assert len(operations) >= 30
    assert sum("/mlflow" in op.path for op in operations) > 50  # MLflow's routes too
    headers = {"Authorization": f"Bearer {server.tokens['admin']}"}
    known = _records(server)
    turns = itertools.count()
    failures: list[str] = []
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            if "/mlflow" in case.path and next(turns) % 2:
                _name_records(case, known)
            response = case.call(base_url=server.url, headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.body!r} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        check()
    assert failures == []


def _records(server: TeamServer) -> dict[str, Any]:
    """Records the MLflow routes can find: an experiment, a run with an artifact, a logged
    model and a registered model with a version (random ids would all be 404s)."""
    base = "/api/2.0/mlflow"
    with server.http("admin") as client:

        def post(path: str, body: dict[str, Any]) -> Any:
            answer = client.post(f"{base}/{path}", json=body)
            assert answer.status_code == 200, answer.text
            return answer.json()

        exp = post("experiments/create", {"name": "fuzzed"})["experiment_id"]
        run = post("runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
        made = post("logged-models", {"experiment_id": exp, "source_run_id": run})
        model_id = made["model"]["info"]["model_id"]
        files = f"/api/2.0/mlflow-artifacts/artifacts/{exp}"
        client.put(f"{files}/models/{model_id}/artifacts/MLmodel", content=_MLMODEL)
        client.put(f"{files}/{run}/artifacts/a.txt", content=b"a").raise_for_status()
        post("registered-models/create", {"name": "fuzzed"})
        post("model-versions/create", {"name": "fuzzed", "source": f"models:/{model_id}"})
    return {
        "experiment_id": exp,
        "experiment_ids": [exp],
        "run_id": run,
        "run_uuid": run,
        "model_id": model_id,
        "name": "fuzzed",
        "version": "1",
        "path": f"{exp}/{run}/artifacts/a.txt",
    }


_MLMODEL = b"flavors:\n  python_function: {}\n"


def _name_records(case: Any, known: dict[str, Any]) -> None:
    """Point the case's ids at records that exist, so it reaches past the lookups."""
    for part in (case.body, case.query, case.path_parameters):
        if isinstance(part, dict):
            for key in part.keys() & known.keys():
                part[key] = known[key]
