"""What holds a retraining back: the cool-down after the last decision, the daily cap, and
the watermarks that keep one alert from starting two decisions."""

from __future__ import annotations

from typing import Any

import pytest
from loop_world import World

from ferryml.automation import Agent, list_decisions
from ferryml.monitoring.monitors import MonitorSpec, add_monitor
from ferryml.store.sql import SqlStore
from ferryml.store.sql_alerts import SqlAlertStore


@pytest.fixture
def fast(world: World) -> World:
    """The world with a monitor whose rule fires again on each new bad window."""
    add_monitor(
        world.settings,
        MonitorSpec(
            "churn-fast", "churn", "model:m@champion", window=100,
            task="classification", checks="performance", rules=["accuracy < 0.8 cooldown 0"],
        ),
    )  # fmt: skip
    return world


def _policy(world: World, **overrides: Any) -> Any:
    """A policy whose decisions end at once: the gate rejects every candidate."""
    return world.policy(triggers=[{"alert": "churn-fast"}], gate={"min_delta": 0.9}, **overrides)


def _fired(world: World) -> int:
    store = SqlAlertStore(SqlStore(world.settings.store_url).open())
    try:
        return sum(a.state == "fired" for a in store.list_alerts(monitor="churn-fast"))
    finally:
        store.close()


def _alert_again(world: World, agent: Agent) -> list[int]:
    """A good window that resolves the alert, then a bad one that fires it again: the
    decisions the passes started."""
    fired = _fired(world)
    world.traffic(100, changed=False)
    created = agent.tick().created
    world.traffic(100, changed=True)
    created += agent.tick().created
    assert _fired(world) == fired + 1
    return created


def _ended(world: World, decision: int) -> None:
    assert world.story(decision)["outcome"] == "rejected"


HELD_BACK = {"in the cool-down": ("1h", 5), "past the daily cap": (0, 1)}


@pytest.mark.parametrize(("cooldown", "max_per_day"), HELD_BACK.values(), ids=HELD_BACK)
def test_a_second_alert_after_a_decision_ended_is_held_back(
    fast: World, cooldown: str | int, max_per_day: int
) -> None:
    policy = _policy(fast, cooldown=cooldown, max_per_day=max_per_day)
    with Agent(fast.settings, {policy.name: policy}, schedules=False) as agent:
        _ended(fast, fast.start(agent))
        assert _alert_again(fast, agent) == []
    assert len(list_decisions(fast.settings)) == 1


def test_an_alert_starts_one_decision_however_many_passes_see_it(fast: World) -> None:
    policy = _policy(fast, cooldown=0, max_per_day=5)
    with Agent(fast.settings, {policy.name: policy}, schedules=False) as agent:
        first = fast.start(agent)
        _ended(fast, first)
        assert agent.tick().created == []  # the alert is still "fired", but was seen
        assert agent.tick().created == []
        second = _alert_again(fast, agent)  # a new alert does start one
    assert len(second) == 1 and second[0] != first
    assert [d.id for d in list_decisions(fast.settings)] == [second[0], first]


def test_a_metric_trigger_fires_on_the_first_bad_window_after_the_agent_started(
    world: World,
) -> None:
    policy = world.policy(triggers=[{"metric": "accuracy < 0.8", "monitor": "churn-watch"}])
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)  # no monitor window existed at the first pass
    assert world.story(decision)["trigger"] == "accuracy < 0.8 on monitor churn-watch"


def test_a_trigger_added_later_does_not_act_on_alerts_from_before(fast: World) -> None:
    waiting = fast.policy(triggers=[{"new_labels": 100_000}])
    with Agent(fast.settings, {waiting.name: waiting}, schedules=False) as agent:
        agent.tick()
        fast.traffic(400, changed=True)
        assert agent.tick().created == [] and _fired(fast) >= 1
    grown = fast.policy(
        triggers=[{"new_labels": 100_000}, {"alert": "churn-fast"}], gate={"min_delta": 0.9}
    )
    with Agent(fast.settings, {grown.name: grown}, schedules=False) as agent:
        assert agent.tick().created == []  # the alert came before the trigger existed
        assert len(_alert_again(fast, agent)) == 1  # a new one acts
