"""The closed-loop tests' world (see ``loop_world``)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from loop_world import PIPELINE, World, rows

import ferryml as ferry
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.monitoring.monitors import MonitorSpec, add_monitor
from ferryml.pipelines import run_target
from ferryml.serving.deployments import Deployments


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The world on a SQLite store in the project folder."""
    settings = Settings.resolve(home=tmp_path / "home", cwd=tmp_path, environ={})
    yield from _world(tmp_path, settings)


@pytest.fixture
def any_world(tmp_path: Path, store_url: str) -> Iterator[World]:
    """The world on each store: SQLite, and a schema of the PostgreSQL server."""
    settings = Settings(
        home=tmp_path / "home",
        store_url=store_url,
        artifacts_url=(tmp_path / "artifacts").as_uri(),
        root=tmp_path,
    )
    yield from _world(tmp_path, settings)


def _world(tmp_path: Path, settings: Settings) -> Iterator[World]:
    module = f"retrain_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PIPELINE))
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    workspace = Workspace(settings)
    workspace.add_frame(rows(1000, 1, changed=False), "churn")
    workspace.close()
    sys.path.insert(0, str(tmp_path))
    result = run_target(f"{module}:training", {"data": "churn@1"}, settings=settings)
    assert result.status == "FINISHED" and result.output() == 1
    ferry.set_registered_model_alias("m", "champion", 1)
    manager = Deployments(settings)
    manager.create("churn", "m", 1)
    manager.close()
    add_monitor(
        settings,
        MonitorSpec(
            "churn-watch", "churn", "model:m@champion", window=100,
            task="classification", checks="performance", rules=["accuracy < 0.8"],
        ),
    )  # fmt: skip
    yield World(settings, module)
    sys.path.remove(str(tmp_path))
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
