"""The closed loop in one process: an alert starts a decision that retrains on fresh
labels, gates the candidate, rolls it out as a canary and promotes or rolls it back."""

from __future__ import annotations

from loop_world import World

from ferryml.automation import Agent, decision_story


def test_a_changed_world_is_retrained_rolled_out_and_promoted(world: World) -> None:
    policy = world.policy()
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        assert agent.tick().created == []  # the first pass sets the watermarks
        world.traffic(100, changed=False)
        assert agent.tick().created == []  # accurate: no alert
        world.traffic(400, changed=True)
        tick = agent.tick()
        assert len(tick.created) == 1
        decision = tick.created[0]
        assert world.routes() == [(1, 50.0, "primary"), (2, 50.0, "canary")]
        assert world.champion() == 1  # not before the canary proved itself
        world.traffic(50, changed=True, version=1)
        world.traffic(50, changed=True, version=2)
        agent.tick()
    story = decision_story(world.settings, decision)
    assert world.routes() == [(2, 100.0, "primary")], story["events"]
    assert world.champion() == 2
    story = decision_story(world.settings, decision)
    assert story["outcome"] == "promoted"
    assert [e["kind"] for e in story["events"]] == [
        "trigger", "data", "trained", "gate", "rollout", "promoted",
    ]  # fmt: skip
    assert story["links"]["candidate"]["version"] == "m/2"
    assert story["links"]["monitor_window"]["monitor"] == "churn-watch"
