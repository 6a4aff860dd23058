"""Schemathesis against the team server's OpenAPI document, with an admin's token: no
generated request makes it answer 5xx."""

from __future__ import annotations

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
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    headers = {"Authorization": f"Bearer {server.tokens['admin']}"}
    failures: list[str] = []
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.body!r} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        check()
    assert failures == []
