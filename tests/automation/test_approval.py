"""Policies in approval mode: a decision waits for a person, who approves or rejects it on
the command line; ``ferry decisions`` tells each decision's story."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loop_world import World

from ferryml.automation import Agent

Cli = Callable[..., Any]


@pytest.fixture
def ferry(world: World, cli: Cli) -> Cli:
    """``ferry *args`` on the world's stores."""
    s = world.settings
    return lambda *args: cli(
        "--home", str(s.home), "--store", s.store_url, "--artifacts", s.artifacts_url, *args
    )


@pytest.fixture
def waiting(world: World) -> Iterator[tuple[Agent, int]]:
    """An agent, and a decision of an approval-mode policy that waits for a person."""
    policy = world.policy(mode="approval")
    with Agent(world.settings, {policy.name: policy}, schedules=False) as agent:
        yield agent, world.start(agent)


def test_an_approved_decision_waits_then_rolls_out_on_the_next_pass(
    world: World, ferry: Cli, waiting: tuple[Agent, int]
) -> None:
    agent, decision = waiting
    code, out, _ = ferry("decisions", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if "awaiting_approval" in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[:4] == [str(decision), "retrain-churn", "churn", "awaiting_approval"]
    assert agent.tick().steps == 0  # nobody approved: it keeps waiting
    assert world.routes() == [(1, 100.0, "primary")]

    code, out, err = ferry("approve", str(decision), "--reason", "looks right")
    assert (code, err) == (0, "")
    assert out == f"Decision {decision} approved; the agent rolls it out on its next pass.\n"
    assert world.routes() == [(1, 100.0, "primary")]
    agent.tick()
    assert world.routes() == [(1, 50.0, "primary"), (2, 50.0, "canary")]
    story = world.story(decision)
    assert story["state"] == "rolling_out"
    assert [e["kind"] for e in story["events"]][-3:] == ["gate", "approved", "rollout"]
    assert story["events"][-2]["message"].endswith(": looks right")

    code, out, err = ferry("approve", str(decision))
    assert (code, out) == (1, "")
    assert err == (
        f"error: Decision {decision} is rolling_out, not waiting for approval; "
        f"see `ferry decisions show {decision}`.\n"
    )


def test_a_rejected_decision_ends_and_the_champion_keeps_serving(
    world: World, ferry: Cli, waiting: tuple[Agent, int]
) -> None:
    agent, decision = waiting
    code, out, err = ferry("reject", str(decision), "--reason", "not on a Friday")
    assert (code, err) == (0, "")
    assert out == f"Decision {decision} rejected; the champion keeps serving.\n"
    agent.tick()
    story = world.story(decision)
    assert (story["state"], story["outcome"]) == ("done", "rejected")
    assert story["events"][-1]["kind"] == "rejected"
    assert story["events"][-1]["details"]["reason"] == "not on a Friday"
    assert world.routes() == [(1, 100.0, "primary")]
    assert world.champion() == 1

    code, out, err = ferry("reject", str(decision))
    assert (code, out) == (1, "")
    assert err == (
        f"error: Decision {decision} is rejected, not waiting for approval; "
        f"see `ferry decisions show {decision}`.\n"
    )


def test_approving_a_decision_that_does_not_exist_says_where_to_look(
    world: World, ferry: Cli
) -> None:
    code, out, err = ferry("approve", "99")
    assert (code, out) == (1, "")
    assert err == "error: Decision 99 not found. See `ferry decisions list`.\n"


def test_decisions_show_tells_the_trigger_the_steps_and_what_they_involved(
    world: World, ferry: Cli, waiting: tuple[Agent, int]
) -> None:
    _, decision = waiting
    story = world.story(decision)
    run = story["links"]["pipeline_run"]["id"]

    code, out, err = ferry("decisions", "show", str(decision))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"Decision {decision}: policy retrain-churn on deployment churn, "
        "in progress (awaiting_approval)."
    )
    kinds = [line.split()[2] for line in lines[1:5]]
    assert kinds == ["trigger", "data", "trained", "gate"]
    assert "alert " in lines[1] and "accuracy < 0.8" in lines[1]
    assert f"waiting for `ferry approve {decision}`" in lines[4]
    assert f"pipeline_run    {run}  (ferry runs show {run})" in out
    assert "candidate       m/2  (ferry models show m/2)" in out
    assert "champion        m/1  (ferry models show m/1)" in out
    assert "monitor_window  churn-watch  (ferry monitor report churn-watch)" in out

    code, out, _ = ferry("decisions", "show", str(decision), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["trigger"] == "alert of monitor churn-watch"
    assert shown["links"]["pipeline_run"]["id"] == run
    assert [e["kind"] for e in shown["events"]] == ["trigger", "data", "trained", "gate"]
