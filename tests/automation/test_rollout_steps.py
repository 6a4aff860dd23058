"""Canary steps that last a while rather than a number of requests."""

from __future__ import annotations

import time

import pytest
from loop_world import World

from ferryml.automation import Agent, Policy
from ferryml.errors import InvalidArgument


def test_a_timed_step_holds_the_canary_until_its_minutes_passed(world: World) -> None:
    policy = world.policy(rollout={"steps": [{"weight": 40, "minutes": 0.05}]})
    ahead = [0.0]  # seconds the agent's clock runs ahead of the wall clock

    def clock() -> float:
        return time.time() + ahead[0]

    with Agent(world.settings, {policy.name: policy}, schedules=False, clock=clock) as agent:
        decision = world.start(agent)
        assert world.routes() == [(1, 60.0, "primary"), (2, 40.0, "canary")]
        world.traffic(30, changed=True, version=2)  # labels to judge the canary on
        world.traffic(30, changed=True, version=1)
        agent.tick()
        assert world.story(decision)["outcome"] is None  # 3 s have not passed yet
        ahead[0] = 3.2
        agent.tick()
    assert world.story(decision)["outcome"] == "promoted"
    assert world.routes() == [(2, 100.0, "primary")]
    assert "for 0.05 minutes" in world.story(decision)["events"][-2]["message"]


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [{"weight": 20, "requests": 0}]}, r"steps\[0\]: give the step requests"),
        ({"steps": [{"weight": 20, "minutes": 90}]}, "must exceed every step's minutes"),
        ({"steps": [{"weight": 20, "minutes": -1}]}, r"steps\[0\].minutes: must be at least 0"),
    ],
)
def test_steps_that_cannot_end_are_refused(rollout: dict[str, object], message: str) -> None:
    body = {
        "deployment": "d",
        "triggers": [{"new_labels": 10}],
        "retrain": {"pipeline": "train:training"},
        "rollout": rollout,
    }
    with pytest.raises(InvalidArgument, match=message):
        Policy.from_dict("p", body)
