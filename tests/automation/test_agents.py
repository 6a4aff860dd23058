"""One agent acts at a time: the lease in the store decides which, hands over when the
holder stops or dies, and a killed agent's decision is carried on from its recorded state
by the next one without ever leaving the deployment half-changed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loop_world import World

from ferryml.automation import Agent, list_decisions
from ferryml.config import Settings

SCRIPT = """
import json, sys, time
from pathlib import Path
from ferryml.automation import Agent, Policy
from ferryml.config import Settings

args = json.loads(sys.argv[1])
settings = Settings(
    home=Path(args["home"]), store_url=args["store"], artifacts_url=args["artifacts"],
    root=Path(args["root"]),
)
policy = Policy.from_dict("retrain-churn", args["policy"])
agent = Agent(settings, {policy.name: policy}, lease_seconds=args["lease"], schedules=False)
agent.store  # connected (and migrated) before the start signal
Path(args["ready"]).touch()
while not Path(args["go"]).exists():
    time.sleep(0.002)
tick = agent.tick()
print(json.dumps({"me": agent.holder, "active": tick.active, "holder": tick.holder,
                  "created": tick.created, "errors": tick.errors}))
agent.close()
"""


def _until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Polls ``condition`` until it is true; its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def _valid(routes: list[tuple[int, float, str]]) -> bool:
    """One primary, no negative weight, and all the traffic routed."""
    return (
        [role for _, _, role in routes].count("primary") == 1
        and all(weight >= 0 for _, weight, _ in routes)
        and sum(weight for _, weight, role in routes if role != "shadow") == 100.0
    )


def _agent(settings: Settings, lease: float = 30.0) -> Agent:
    return Agent(settings, {}, lease_seconds=lease, monitors=False, schedules=False)


def test_of_two_agents_one_acts_and_the_other_takes_over_when_it_stops(
    settings: Settings,
) -> None:
    with _agent(settings) as first, _agent(settings) as second:
        assert first.tick().active
        standby = second.tick()
        assert (standby.active, standby.holder) == (False, first.holder)
        assert first.tick().active  # the holder renews
        first.close()
        assert second.tick().active
        assert (first.tick().active, first.tick().holder) == (False, second.holder)


def test_an_agent_takes_over_once_a_dead_holders_lease_expires(settings: Settings) -> None:
    with _agent(settings, lease=0.5) as dead, _agent(settings, lease=0.5) as other:
        assert dead.tick().active  # then never renews, nor releases
        assert other.tick().holder == dead.holder
        _until(lambda: other.tick().active, timeout=5)
        dead.close()  # a late release does not free a lease it lost
        assert dead.tick().holder == other.holder


def _spawn(world: World, tmp_path: Path, name: str, policy: dict[str, Any], lease: float) -> Any:
    script = tmp_path / "agent_once.py"
    script.write_text(textwrap.dedent(SCRIPT))
    s = world.settings
    args = {
        "home": str(s.home), "store": s.store_url, "artifacts": s.artifacts_url,
        "root": str(s.root), "policy": policy, "lease": lease,
        "ready": str(tmp_path / f"{name}.ready"), "go": str(tmp_path / "go"),
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(process: Any) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def _alerted(world: World, policy: dict[str, Any]) -> None:
    """Watermarks set by a first agent, which then stops; then a changed world."""
    with Agent(world.settings, {"retrain-churn": world.policy(**policy)}, schedules=False) as a:
        assert a.tick().created == []
    world.traffic(400, changed=True)


@pytest.mark.e2e
def test_two_agent_processes_started_together_make_one_decision(
    any_world: World, tmp_path: Path
) -> None:
    waits = {"retrain": {"min_rows": 10**6, "feedback": 10**6}}  # starts, then waits for labels
    _alerted(any_world, waits)
    body = any_world.policy_body(**waits)
    processes = [_spawn(any_world, tmp_path, name, body, 30.0) for name in ("a", "b")]
    _until(lambda: all((tmp_path / f"{n}.ready").exists() for n in "ab"), timeout=60)
    (tmp_path / "go").touch()
    reports = [_report(p) for p in processes]
    active = [r for r in reports if r["active"]]
    standby = [r for r in reports if not r["active"]]
    assert len(active) == 1 and len(standby) == 1, reports
    assert standby[0]["holder"] == active[0]["me"]
    assert active[0]["errors"] == []
    decisions = list_decisions(any_world.settings)
    assert [d.id for d in decisions] == active[0]["created"] and len(decisions) == 1
    assert decisions[0].state == "triggered"


@pytest.mark.e2e
def test_a_killed_agents_decision_is_finished_by_the_next_agent(
    world: World, tmp_path: Path
) -> None:
    paused = tmp_path / "paused"
    overrides = {"retrain": {"params": {"pause": str(paused)}}}
    _alerted(world, overrides)
    process = _spawn(world, tmp_path, "a", world.policy_body(**overrides), 1.0)
    (tmp_path / "go").touch()
    _until(paused.exists, timeout=60)  # training, in the pipeline's step
    (decision,) = list_decisions(world.settings)
    assert decision.state == "data_ready"
    assert world.routes() == [(1, 100.0, "primary")]
    process.kill()
    process.communicate(timeout=30)

    policy = world.policy(**overrides)
    with Agent(world.settings, {policy.name: policy}, lease_seconds=1.0, schedules=False) as b:
        while not (tick := b.tick()).active:  # until the dead agent's lease expires
            assert _valid(world.routes())
            time.sleep(0.05)
        assert tick.created == [] and tick.errors == []
        assert world.routes() == [(1, 50.0, "primary"), (2, 50.0, "canary")]
        assert world.champion() == 1
        world.traffic(50, changed=True, version=1)
        world.traffic(50, changed=True, version=2)
        b.tick()
    story = world.story(decision.id)
    assert story["outcome"] == "promoted", story["events"]
    assert [e["kind"] for e in story["events"]] == [
        "trigger", "data", "trained", "gate", "rollout", "promoted",
    ]  # fmt: skip
    assert world.routes() == [(2, 100.0, "primary")]
    assert world.champion() == 2


def test_a_pass_runs_the_schedules_that_are_due(world: World) -> None:
    from sqlalchemy import update

    from ferryml.pipelines.schedule import add_schedule, list_schedules
    from ferryml.store import _schema
    from ferryml.store.sql import SqlStore

    add_schedule(world.settings, "nightly", "0 3 * * *", f"{world.module}:training",
                 {"data": "churn@1"})  # fmt: skip
    store = SqlStore(world.settings.store_url).open()
    with store.engine.begin() as conn:  # as if 03:00 had come
        conn.execute(update(_schema.schedules).values(next_run_time=0))
    store.close()
    with Agent(world.settings, {}) as agent:
        assert agent.tick().schedules == 1
        assert agent.tick().schedules == 0  # the occurrence ran once
    (schedule,) = list_schedules(world.settings)
    assert schedule.last_status == "FINISHED" and schedule.last_run_id


def test_run_makes_passes_until_stopped_and_reports_each(world: World) -> None:
    import threading

    stop, ticks = threading.Event(), []

    def seen(tick: Any) -> None:
        ticks.append(tick)
        if len(ticks) == 2:
            stop.set()

    with Agent(world.settings, {}) as agent:
        agent.run(interval=0.05, stop=stop, on_tick=seen)
    assert [t.active for t in ticks] == [True, True]
