"""One reading of durations everywhere: policies, alert rules, expectations, the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ferryml._duration import parse_duration
from ferryml.automation.policy import Policy
from ferryml.data.validation import Fresh
from ferryml.errors import InvalidArgument
from ferryml.monitoring.alerts import parse_rule
from ferryml.monitoring.monitors import MonitorSpec


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("45", 45.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("30min", 1800.0),
        ("30 minutes", 1800.0),
        ("6H", 21600.0),
        ("1d", 86400.0),
        ("2w", 1209600.0),
        ("1d12h", 129600.0),
        ("1d 12h", 129600.0),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_a_duration_is_seconds_or_text_with_units(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "30x", "-1", "1d-2h", "", True, None, [1]])
def test_anything_else_is_refused_saying_what_a_duration_is(value: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_duration(value)
    assert str(caught.value) == (
        f"must be seconds or a duration such as 90s, 30min, 6h, 1d or 1d12h; got {value!r}."
    )


def test_negative_and_zero_durations_are_refused_where_they_make_no_sense() -> None:
    with pytest.raises(InvalidArgument, match="must be at least 0 .*; got -5"):
        parse_duration(-5)
    with pytest.raises(InvalidArgument, match="must be above 0 .*; got '0s'"):
        parse_duration("0s", positive=True)
    assert parse_duration("0s") == 0.0


def test_30min_means_the_same_in_a_policy_an_alert_and_an_expectation() -> None:
    policy = Policy.from_dict(
        "p",
        {
            "deployment": "churn",
            "triggers": [{"alert": "watch"}],
            "retrain": {"pipeline": "train.py:training", "max_wait": "30min"},
            "cooldown": "30min",
        },
    )
    assert (policy.cooldown_s, policy.retrain.max_wait_s) == (1800.0, 1800.0)
    assert parse_rule("accuracy < 0.8 cooldown 30min").cooldown_s == 1800.0
    rule = parse_rule({"metric": "accuracy", "op": "<", "threshold": 0.8, "cooldown": "30min"})
    assert rule.cooldown_s == 1800.0
    assert Fresh("ts", "30min").max_age == timedelta(minutes=30)


@pytest.mark.parametrize("window", ["30min", "30m", "1d12h", "90s", 1000])
def test_a_monitor_window_is_a_duration_read_alike_or_a_count_of_rows(window: Any) -> None:
    assert MonitorSpec("watch", "churn", "model:churn@champion", window=window).window == window


@pytest.mark.parametrize("window", ["soon", "0.5s", "0s", 0, True])
def test_a_monitor_window_too_short_or_not_a_duration_is_refused(window: Any) -> None:
    with pytest.raises(InvalidArgument, match="Monitor window|rows must hold at least 1 row"):
        MonitorSpec("watch", "churn", "model:churn@champion", window=window)
