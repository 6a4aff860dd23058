"""The Dask executor on a real LocalCluster of two worker processes: outputs, caching,
failures and retries behave exactly as with the local executor."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import example_pipelines as ex
import pytest

from ferryml.config import Settings
from ferryml.errors import StoreUnavailable
from ferryml.pipelines import run_pipeline
from ferryml.pipelines.executors import DaskExecutor

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    # Workers are new processes: they find the test pipelines through PYTHONPATH.
    here = str(Path(__file__).parent)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, before) if p)
    executor = DaskExecutor(workers=2)
    yield executor
    executor.close()
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


def test_dask_runs_give_the_local_results_and_share_the_cache(
    cluster: DaskExecutor, sqlite_settings: Settings
) -> None:
    local = run_pipeline(ex.training, {"rows": 16}, settings=sqlite_settings, cache=False)
    on_dask = run_pipeline(
        ex.training, {"rows": 16}, settings=sqlite_settings, executor=cluster, cache=False
    )
    assert on_dask.status == "FINISHED"
    assert on_dask.output() == local.output()
    hits = run_pipeline(ex.training, {"rows": 16}, settings=sqlite_settings, executor=cluster)
    assert {s.cache for s in hits.steps.values()} == {"hit"}


def test_dask_failures_and_retries_behave_as_locally(
    cluster: DaskExecutor, sqlite_settings: Settings, tmp_path: Path
) -> None:
    broken = run_pipeline(ex.partly_broken, settings=sqlite_settings, executor=cluster)
    assert {n: s.status for n, s in broken.steps.items()} == {
        "load": "FINISHED",
        "broken": "FAILED",
        "after_broken": "SKIPPED",
        "stats": "FINISHED",
    }
    assert "ValueError: bad data in step" in (broken.steps["broken"].error or "")
    retried = run_pipeline(
        ex.retrying, {"marker": str(tmp_path / "m")}, settings=sqlite_settings, executor=cluster
    )
    assert (retried.output(), retried.steps["flaky"].attempts) == ("ok after 3", 3)


def test_a_dask_step_past_its_timeout_fails(
    cluster: DaskExecutor, sqlite_settings: Settings
) -> None:
    result = run_pipeline(ex.sleepy, {"seconds": 4.0}, settings=sqlite_settings, executor=cluster)
    assert result.status == "FAILED"
    assert "timeout of 0.5 s" in (result.steps["slow"].error or "")


PROJECT_PIPELINE = """
from ferryml.pipelines import pipeline, step

FACTOR = 3


def triple(value):
    return value * FACTOR


@step
def first(n: int) -> int:
    return triple(n)


@step
def second(value: int) -> str:
    return f"got {value}"


@pipeline
def training(n: int = 2):
    return second(first(n))
"""


def test_a_project_pipeline_runs_on_workers_that_lack_its_file(
    cluster: DaskExecutor, sqlite_settings: Settings, tmp_path: Path
) -> None:
    # The module is importable here only, as a project's train.py is on the machine that
    # submits it and not on the cluster's workers.
    folder = tmp_path / "project"
    folder.mkdir()
    name = f"project_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(PROJECT_PIPELINE))
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(name)
        result = run_pipeline(module.training, {"n": 5}, settings=sqlite_settings, executor=cluster)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)
    assert result.status == "FINISHED", [s.error for s in result.steps.values()]
    assert result.output() == "got 15"


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    with pytest.raises(
        StoreUnavailable, match="Cannot reach the Dask scheduler at tcp://127.0.0.1:9"
    ):
        DaskExecutor("tcp://127.0.0.1:9")
