"""Policies from ``ferry.yaml``: every field is read as written, and a wrong one is named
by file, line and dotted field, in the library and by ``ferry agent``."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ferryml.automation import load_policies
from ferryml.automation.policy import Retrain, Rollout, RolloutStep, Trigger
from ferryml.errors import InvalidArgument

VALID = """\
store: sqlite:///ignored.db
policies:
  churn-retrain:
    deployment: churn
    mode: approval
    task: classification
    target: churned
    triggers:
      - alert: churn-watch
        rule: accuracy < 0.8
      - metric: accuracy < 0.7
        monitor: churn-watch
      - schedule: "0 3 * * *"
      - new_labels: 5000
    retrain:
      pipeline: train.py:training
      data: churn
      feedback: 2000
      holdout: 0.25
      params: {n_estimators: 200}
      executor: dask
      address: tcp://scheduler:8786
    gate: {metric: f1, min_delta: 0.01}
    rollout:
      steps: [{weight: 20, requests: 200}, {weight: 50, requests: 300}]
      minutes: 30
      max_drop: 0.02
      min_labelled: 40
    cooldown: 2h
    max_per_day: 5
  other:
    deployment: fraud
    triggers: [{new_labels: 10}]
    retrain: {pipeline: "pipes:train"}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ferry.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_policy_file_is_read_field_by_field(tmp_path: Path) -> None:
    _write(tmp_path, VALID)
    policies = load_policies(tmp_path)
    assert list(policies) == ["churn-retrain", "other"]
    p = policies["churn-retrain"]
    assert (p.name, p.deployment, p.mode, p.task, p.target) == (
        "churn-retrain", "churn", "approval", "classification", "churned",
    )  # fmt: skip
    assert p.triggers == (
        Trigger("alert", monitor="churn-watch", rule="accuracy < 0.8"),
        Trigger("metric", monitor="churn-watch", rule="accuracy < 0.7"),
        Trigger("schedule", cron="0 3 * * *"),
        Trigger("new_labels", count=5000),
    )
    assert p.retrain == Retrain(
        pipeline="train.py:training",
        data="churn",
        feedback=2000,
        holdout=0.25,
        params={"n_estimators": 200},
        executor="dask",
        address="tcp://scheduler:8786",
    )
    assert (p.gate.metric, p.gate.min_delta) == ("f1", 0.01)
    assert p.rollout == Rollout((RolloutStep(20, 200), RolloutStep(50, 300)), 30, 0.02, 40)
    assert (p.cooldown_s, p.max_per_day) == (7200, 5)
    other = policies["other"]
    assert (other.retrain.executor, other.retrain.address) == ("local", None)
    assert (other.mode, other.cooldown_s, other.max_per_day, other.rollout) == (
        "auto", 3600, 3, Rollout(),
    )  # fmt: skip


def test_a_project_without_policies_has_none(tmp_path: Path) -> None:
    assert load_policies(tmp_path) == {}
    _write(tmp_path, "store: sqlite:///x.db\n")
    assert load_policies(tmp_path) == {}


BASE = """\
policies:
  p:
    deployment: churn
    triggers:
      - alert: churn-watch
    retrain:
      pipeline: train.py:training
    rollout:
      steps:
        - {weight: 20, requests: 100}
        - {weight: 50, requests: 100}
"""


def _edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


# (the file, its wrong field, the line that field is on, what the message says about it)
INVALID = {
    "weight out of range": (
        _edit("{weight: 50,", "{weight: 150,"),
        "policies.p.rollout.steps[1].weight", 11,
        "must be above 0 and below 100 (percent); got 150.0.",
    ),
    "unknown field": (
        _edit("    rollout:\n", "    roll_out_fast: yes\n    rollout:\n"),
        "policies.p.roll_out_fast", 8,
        "unknown field (did you mean 'rollout'?); use cooldown, deployment, gate, ",
    ),
    "unknown nested field": (
        _edit("      pipeline: train.py:training\n",
              "      pipeline: train.py:training\n      holdot: 0.2\n"),
        "policies.p.retrain.holdot", 8,
        "unknown field (did you mean 'holdout'?); use address, data, data_param, executor, ",
    ),
    "missing deployment": (
        _edit("    deployment: churn\n", ""), "policies.p.deployment", 2, "is required.",
    ),
    "missing retrain pipeline": (
        _edit("      pipeline: train.py:training\n", "      data: churn\n"),
        "policies.p.retrain.pipeline", 6, "is required.",
    ),
    "pipeline without its target": (
        _edit("pipeline: train.py:training", "pipeline: train.py"),
        "policies.p.retrain.pipeline", 7, "'train.py' is not FILE.py:PIPELINE or MODULE:PIPELINE.",
    ),
    "unknown executor": (
        _edit("pipeline: train.py:training", "{pipeline: 'train.py:training', executor: ray}"),
        "policies.p.retrain.executor", 7, "must be 'local', 'process' or 'dask'; got 'ray'.",
    ),
    "a scheduler address without dask": (
        _edit("pipeline: train.py:training",
              "{pipeline: 'train.py:training', address: 'tcp://s:8786'}"),
        "policies.p.retrain", 6,
        "address is a Dask scheduler's, for executor: dask (executor is local).",
    ),
    "an address that is not one": (
        _edit("pipeline: train.py:training",
              "{pipeline: 'train.py:training', executor: dask, address: scheduler}"),
        "policies.p.retrain.address", 7,
        "'scheduler' is not a scheduler's address such as tcp://host:8786.",
    ),
    "bad cron": (
        _edit("- alert: churn-watch", '- schedule: "61 * * * *"'),
        "policies.p.triggers[0].schedule", 5, "Cron expression '61 * * * *' is invalid",
    ),
    "bad metric rule": (
        _edit("- alert: churn-watch", "- {metric: accuracy is low, monitor: churn-watch}"),
        "policies.p.triggers[0].metric", 5, "Alert rule 'accuracy is low' is invalid",
    ),
    "two kinds in one trigger": (
        _edit("- alert: churn-watch", "- {alert: churn-watch, new_labels: 10}"),
        "policies.p.triggers[0]", 5, "name exactly one of alert, metric, schedule, new_labels",
    ),
    "unknown mode": (
        _edit("    deployment: churn\n", "    deployment: churn\n    mode: yolo\n"),
        "policies.p.mode", 4, "must be 'auto' or 'approval'; got 'yolo'.",
    ),
    "bad cooldown": (
        _edit("    deployment: churn\n", "    deployment: churn\n    cooldown: soon\n"),
        "policies.p.cooldown", 4,
        "must be seconds or a duration such as 90s, 30min, 6h, 1d or 1d12h; got 'soon'.",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("text", "field", "line", "detail"), INVALID.values(), ids=INVALID)
def test_a_wrong_policy_is_rejected_naming_file_line_and_field(
    tmp_path: Path, text: str, field: str, line: int, detail: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InvalidArgument) as caught:
        load_policies(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path} line {line}: {field}: {detail}"), message


def test_the_agent_refuses_a_wrong_policy_file_with_one_line(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _edit("{weight: 50,", "{weight: 150,"))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("--home", str(tmp_path / "home"), "agent", "--once")
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path} line 11: policies.p.rollout.steps[1].weight: must be above 0 and "
        "below 100 (percent); got 150.0.\n"
    )


def test_the_agent_reads_the_policies_of_ferry_yaml(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, BASE)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("--home", str(tmp_path / "home"), "agent", "--once")
    assert (code, err) == (0, "")
    assert out.startswith("Agent ") and out.endswith(": policies p.\n")
