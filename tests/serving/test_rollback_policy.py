"""The automatic rollback's latency judgement: the canary against the primary over the same
stretch of time, at a percentile its requests can tell."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ferryml.errors import InvalidArgument
from ferryml.serving.deployments import LATENCIES_KEPT, RollbackPolicy, Spec
from ferryml.serving.service import RouteState


def _replay(seconds_at: Callable[[int], float], canary_every: int, total: int) -> list[RouteState]:
    """Requests answered one per second of a clock, every ``canary_every``-th by the canary."""
    primary = RouteState("v1", None, 100 - 100 / canary_every, "primary")  # type: ignore[arg-type]
    canary = RouteState("v2", None, 100 / canary_every, "canary")  # type: ignore[arg-type]
    for i in range(total):
        route = canary if i % canary_every == 0 else primary
        route.requests += 1
        route.latencies.append((float(i), seconds_at(i)))
    return [canary, primary]


def test_a_burst_of_load_before_the_primarys_latest_requests_rolls_no_canary_back() -> None:
    # The same model on both routes; the machine was three times slower for the first fifth
    # of the time. The canary's 10% of the traffic reaches further back than the primary's
    # deque of latest requests: only the stretch both cover is compared.
    canary, primary = _replay(lambda i: 0.030 if i < 2400 else 0.010, 10, 12_000)
    assert RollbackPolicy().slower(canary, primary) is None


def test_a_canary_slower_on_most_requests_is_named_with_both_figures() -> None:
    canary, primary = _replay(lambda i: 0.035 if i % 10 == 0 else 0.010, 10, 1_000)
    why = RollbackPolicy().slower(canary, primary)
    assert why is not None
    assert why.startswith("canary v2 p") and "35.0 ms exceeds the primary's 10.0 ms" in why


def test_two_pauses_among_sixty_canary_requests_are_not_its_tail() -> None:
    canary, primary = _replay(lambda i: 0.300 if i in (20, 40) else 0.010, 2, 120)
    assert RollbackPolicy().slower(canary, primary) is None


def test_too_few_canary_requests_in_the_shared_stretch_are_not_judged() -> None:
    canary, primary = _replay(lambda i: 0.050 if i % 50 == 0 else 0.010, 50, 2_000)
    assert len(canary.latencies) == 40
    assert RollbackPolicy().slower(canary, primary) is None
    assert RollbackPolicy(min_requests=20).slower(canary, primary) is not None


def test_a_slow_canary_with_one_percent_of_the_traffic_is_named() -> None:
    # Its 50 latest requests reach 5,000 requests back; the primary keeps its latest 2,000.
    canary, primary = _replay(lambda i: 0.200 if i % 100 == 0 else 0.010, 100, 200_000)
    why = RollbackPolicy().slower(canary, primary)
    assert why is not None and "200.0 ms exceeds the primary's 10.0 ms" in why


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("min_requests", LATENCIES_KEPT + 1, "between 1 and 2000"),
        ("min_requests", 0, "between 1 and 2000"),
        ("latency_margin", -0.5, "latency_margin must be"),
        ("error_margin", float("nan"), "error_margin must be"),
        ("min_requests", 60.0, "whole number"),
        ("min_requests", True, "whole number"),
        ("latency_margin", "0.5", "latency_margin must be"),
        ("min_requests", 10**400, "between 1 and 2000"),
    ],
)
def test_a_policy_that_could_never_judge_is_refused_with_what_to_give(
    field: str, value: float, named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        RollbackPolicy(**{field: value})


def test_a_policy_asking_for_every_latency_a_route_keeps_still_judges() -> None:
    canary, primary = _replay(lambda i: 0.050 if i % 2 == 0 else 0.010, 2, 2 * LATENCIES_KEPT)
    assert canary.latencies.maxlen == LATENCIES_KEPT
    assert RollbackPolicy(min_requests=LATENCIES_KEPT).slower(canary, primary) is not None


def test_a_stored_policy_from_before_the_checks_is_read_as_the_nearest_it_may_be() -> None:
    # A deployment stored with a policy the checks now refuse must not stop every
    # deployment from being read: its values are brought into range, the rest kept.
    old = {"model": "m", "routes": [{"version": 1, "weight": 100.0, "role": "primary"}]}
    policy = {"min_requests": 10**400, "latency_margin": -1.0, "error_margin": 0.2}
    with pytest.raises(InvalidArgument):
        Spec.from_dict({**old, "policy": policy})
    read = Spec.from_dict({**old, "policy": policy}, stored=True).policy
    assert read == RollbackPolicy(min_requests=LATENCIES_KEPT, error_margin=0.2)
