"""Schemathesis against the server's own OpenAPI document: no generated input makes it
answer 5xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from ferryml.server.main import build_app

pytestmark = pytest.mark.e2e


def test_no_generated_request_gets_a_5xx(registered: Any, serve: Callable[[Any], Any]) -> None:
    running = serve(build_app(registered.settings, "cancer@champion", log_predictions=False))
    schema = schemathesis.openapi.from_url(f"{running.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            response = case.call(base_url=running.url)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.body!r} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        check()
    assert failures == []
