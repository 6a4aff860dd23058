"""`make demo` runs examples/demo.py: it must keep working as the loop grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferryml.automation import decision_story
from ferryml.config import Settings
from ferryml.serving.deployments import Deployments
from ferryml.store.entities import RunStatus
from ferryml.tracking.client import FerryClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_demo_runs_the_tour_and_closes_the_loop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Runs, best ROC AUC first" in done.stdout
    assert f"look at it in the browser: ferry ui (in {tmp_path})" in done.stdout
    client = FerryClient(Settings.resolve(cwd=tmp_path, environ={}))
    experiment = client.get_experiment_by_name("demo-breast-cancer")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "params.model != ''").runs
    assert sorted(r.data.params["model"] for r in runs) == ["boosting", "forest", "logreg"]
    assert all(
        r.info.status is RunStatus.FINISHED and r.data.metrics["roc_auc"] > 0.9 for r in runs
    )
    boosting = next(r for r in runs if r.data.params["model"] == "boosting")
    assert len(client.get_metric_history(boosting.info.run_id, "test_accuracy")) == 150
    assert [(i.name, i.version) for i in boosting.inputs] == [("breast-cancer", "1")]
    assert "validation passed" in done.stdout
    assert "re-run: 3 of 3 steps from the cache" in done.stdout
    assert "version 1 (logreg) (no champion)" in done.stdout
    assert "champion is version 1" in done.stdout
    assert "143 labels fed back" in done.stdout
    assert "monitoring: 2 windows of 50 predictions" in done.stdout
    client.close()
    _the_loop_closed(tmp_path)


def _the_loop_closed(project: Path) -> None:
    """The closed loop's part: the change was detected without false alerts, v2 was
    rolled out and promoted, and it does better than v1 in the changed world."""
    settings = Settings.resolve(cwd=project, environ={})
    figures = json.loads((settings.home / "reports" / "churn-loop.json").read_text())
    story = decision_story(settings, 1)
    told = [e["message"] for e in story["events"]]
    assert figures["outcome"] == "promoted" and figures["new_version"] == 2, told
    assert figures["false_alerts"] == 0
    assert 0 < figures["detection_delay"] <= 200
    assert figures["webhook_messages"] >= 1
    assert figures["accuracy_before"] > 0.85
    assert figures["accuracy_drifted_old_model"] < 0.65
    assert figures["accuracy_after_promotion"] > figures["accuracy_drifted_old_model"] + 0.2
    assert [e["kind"] for e in story["events"]] == [
        "trigger", "data", "trained", "gate", "rollout", "rollout", "promoted",
    ]  # fmt: skip
    manager = Deployments(settings)
    assert [(r.version, r.weight, r.role) for r in manager.get("churn").routes] == [
        (2, 100.0, "primary")
    ]
    manager.close()
    assert (settings.home / "reports" / "churn-watch.html").stat().st_size > 0
