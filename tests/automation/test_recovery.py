"""What the agent does when things happen between its steps: a promotion cut short by a
kill, a server's late automatic rollback, labels that never come, a broken policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from loop_world import World

from ferryml.automation import Agent, Policy
from ferryml.errors import InvalidArgument
from ferryml.serving.deployments import Deployments


def test_a_promotion_cut_short_is_finished_not_rolled_back(world: World) -> None:
    policy = world.policy()
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
        manager = Deployments(world.settings)
        manager.promote("churn", reason="the agent died right after this")
        manager.close()
        agent.tick()
    story = world.story(decision)
    assert story["outcome"] == "promoted"
    assert world.routes() == [(2, 100.0, "primary")]
    assert world.champion() == 2  # the alias move the kill skipped


def test_a_late_automatic_rollback_does_not_undo_a_promotion(world: World) -> None:
    manager = Deployments(world.settings)
    try:
        before = manager.get("churn")
        after = manager.rollback("churn", reason="canary p99", automatic=True)
        assert after == before == manager.get("churn")
        with pytest.raises(InvalidArgument, match="nothing to roll back to"):
            manager.rollback("churn", reason="by hand")
    finally:
        manager.close()


def test_a_decision_waiting_for_labels_gives_up_after_max_wait(world: World) -> None:
    policy = world.policy(retrain={"min_rows": 5000, "feedback": 5000, "max_wait": 0})
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
    story = world.story(decision)
    assert story["outcome"] == "abandoned"
    assert "of the 5000 fresh labels needed arrived" in story["events"][-1]["message"]
    assert world.routes() == [(1, 100.0, "primary")]


def test_a_broken_policy_is_reported_and_the_others_still_act(world: World) -> None:
    broken = Policy.from_dict("broken", {**world.policy_body(), "deployment": "nowhere"})
    good = world.policy()
    with Agent(world.settings, {"broken": broken, good.name: good}, schedules=False) as agent:
        agent.tick()
        world.traffic(400, changed=True)
        tick = agent.tick()
    assert len(tick.created) == 2  # both triggered; the broken one fails at its first step
    stories = {world.story(d)["policy"]: world.story(d) for d in tick.created}
    assert stories["broken"]["outcome"] == "failed"
    assert "There is nothing to train on" in stories["broken"]["events"][-1]["message"]
    assert world.routes() == [(1, 50.0, "primary"), (2, 50.0, "canary")]


BAD: dict[str, tuple[str, Callable[[dict], dict], str]] = {
    "relative metric trigger": (
        "p",
        lambda b: {**b, "triggers": [{"metric": "accuracy dropped by 0.05", "monitor": "m"}]},
        "make it a monitor rule and trigger on its alert",
    ),
    "more labels than taken in": (
        "p",
        lambda b: {**b, "retrain": {**b["retrain"], "min_rows": 500, "feedback": 100}},
        "500 fresh labels can never be found",
    ),
    "a space in the name": ("a b", lambda b: b, "Policy name .a b. is invalid: use 1 to 250"),
}


@pytest.mark.parametrize(("name", "change", "message"), BAD.values(), ids=BAD)
def test_policies_that_could_never_act_are_refused(
    world: World, name: str, change: Callable[[dict], dict], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Policy.from_dict(name, change(world.policy_body()))


def test_the_agent_refuses_an_interval_as_long_as_its_lease(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, out, err = cli("--home", str(tmp_path), "agent", "--interval", "30", "--lease", "30")
    assert code != 0 and "Traceback" not in out + err
    assert "--interval 30 must be shorter than --lease 30" in out + err


def test_a_canary_the_server_rolled_back_ends_the_decision(world: World) -> None:
    policy = world.policy()
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
        manager = Deployments(world.settings)
        manager.rollback("churn", reason="canary p99 40 ms over the primary's", automatic=True)
        manager.close()
        agent.tick()
    story = world.story(decision)
    assert story["outcome"] == "rolled_back"
    assert (
        "rolled back (ferryml): canary p99 40 ms over the primary's"
        in (story["events"][-1]["message"])
    )
    assert world.routes() == [(1, 100.0, "primary"), (2, 0.0, "canary")]
    assert world.champion() == 1
