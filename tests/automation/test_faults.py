"""What goes wrong on the way: a pipeline that fails, a gate that rejects, a canary that is
worse or starved of requests, a policy removed mid-rollout. Each ends the decision with its
outcome and leaves the champion serving."""

from __future__ import annotations

import yaml
from loop_world import World

from ferryml.automation import Agent


def test_a_failing_retraining_pipeline_fails_the_decision_and_changes_no_route(
    world: World,
) -> None:
    policy = world.policy(retrain={"params": {"fail": True}})
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
    story = world.story(decision)
    assert story["outcome"] == "failed"
    assert [e["kind"] for e in story["events"]] == ["trigger", "data", "failed"]
    run = story["links"]["pipeline_run"]["id"]
    message = story["events"][-1]["message"]
    assert (
        f"run {run} FAILED (failed steps: fit: RuntimeError: the training data is broken); "
        "the champion keeps serving"
    ) in message
    assert world.routes() == [(1, 100.0, "primary")]
    assert world.champion() == 1


def test_a_candidate_the_gate_rejects_is_never_rolled_out(world: World) -> None:
    policy = world.policy(gate={"min_delta": 0.9})
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
    story = world.story(decision)
    assert story["outcome"] == "rejected"
    assert [e["kind"] for e in story["events"]] == ["trigger", "data", "trained", "gate"]
    assert story["events"][-1]["message"].startswith("gate rejected the candidate")
    assert world.routes() == [(1, 100.0, "primary")]
    assert world.champion() == 1


def test_a_canary_worse_than_the_primary_is_rolled_back(world: World) -> None:
    policy = world.policy()
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
        assert world.routes() == [(1, 50.0, "primary"), (2, 50.0, "canary")]
        world.traffic(50, changed=False, version=1)
        world.traffic(50, changed=False, version=2, wrong=True)
        agent.tick()
    story = world.story(decision)
    assert story["outcome"] == "rolled_back"
    last = story["events"][-1]
    assert last["kind"] == "rolled_back"
    assert "canary's accuracy 0.000 is worse than the primary's" in last["message"]
    assert last["details"]["observed"]["canary_requests"] == 50
    assert world.routes() == [(1, 100.0, "primary"), (2, 0.0, "canary")]
    assert world.champion() == 1


def test_a_canary_without_enough_requests_in_time_is_rolled_back(world: World) -> None:
    policy = world.policy(rollout={"minutes": 0.0001})
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        decision = world.start(agent)
        agent.tick()  # a pass later than 6 ms after the step began
    story = world.story(decision)
    assert story["outcome"] == "rolled_back"
    assert "the canary got 0 of 40 requests in 0.0001 minutes" in story["events"][-1]["message"]
    assert world.routes() == [(1, 100.0, "primary"), (2, 0.0, "canary")]
    assert world.champion() == 1


def test_removing_the_policy_mid_rollout_abandons_the_decision_and_its_canary(
    world: World,
) -> None:
    config = world.settings.root / "ferry.yaml"
    config.write_text(yaml.safe_dump({"policies": {"retrain-churn": world.policy_body()}}))
    with Agent(world.settings, schedules=False) as agent:
        decision = world.start(agent)
    assert world.routes() == [(1, 50.0, "primary"), (2, 50.0, "canary")]
    with Agent(world.settings, {}, schedules=False) as agent:  # given policies: no file read
        assert agent.tick().active
    assert world.story(decision)["outcome"] is None
    config.write_text("policies: {}\n")  # removed from the file
    with Agent(world.settings, schedules=False) as agent:
        assert agent.tick().active
    story = world.story(decision)
    assert story["outcome"] == "abandoned"
    assert story["events"][-1]["message"] == "abandoned: policy 'retrain-churn' no longer exists"
    assert world.routes() == [(1, 100.0, "primary"), (2, 0.0, "canary")]
    assert world.champion() == 1
