"""Pipelines end to end: DAG, tracked runs, cache, failures, retries, timeouts, resume,
sweeps; on the local and process executors (Dask in test_dask.py)."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import example_pipelines as ex
import numpy as np
import pytest

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.pipelines import load_target, run_pipeline, run_target, sweep
from ferryml.pipelines._code import code_digest
from ferryml.pipelines._dsl import Graph, Node
from ferryml.store.entities import RunStatus
from ferryml.tracking.client import FerryClient


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("FERRY_TEST_CALLS", str(path))
    return path


def ran(calls: Path) -> list[str]:
    names = calls.read_text().split() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return sorted(names)


def test_a_pipeline_runs_its_dag_and_records_a_run_per_step(settings: Settings) -> None:
    result = run_pipeline(ex.training, {"rows": 10, "lr": 0.5}, settings=settings)
    assert result.status == "FINISHED"
    assert result.output() == pytest.approx(np.arange(10.0).sum() * 2 * 0.5 / 10)
    client = FerryClient(settings)
    run = client.get_run(result.run_id)
    assert run.data.tags["ferry.kind"] == "pipeline"
    assert dict(run.data.params) == {"rows": "10", "lr": "0.5", "factor": "2.0"}
    assert run.data.metrics["score"] == result.output()  # what the step logged
    children = {s: client.get_run(st.run_id) for s, st in result.steps.items()}
    assert set(children) == {"load", "features", "stats", "train"}
    assert all(c.info.parent_run_id == result.run_id for c in children.values())
    assert children["load"].data.params["rows"] == "10"
    assert children["train"].data.metrics["score"] == result.output()
    assert children["load"].data.tags["ferry.output.format"] == "parquet"
    logs = [a.path for a in client.list_artifacts(result.steps["load"].run_id)]
    assert logs == ["logs/stdout-1.txt"]
    client.close()


def test_a_rerun_with_nothing_changed_comes_from_the_cache(settings: Settings, calls: Path) -> None:
    first = run_pipeline(ex.training, {"rows": 8}, settings=settings)
    assert ran(calls) == ["features", "load", "stats", "train"]
    second = run_pipeline(ex.training, {"rows": 8}, settings=settings)
    assert ran(calls) == []
    assert {s.cache for s in second.steps.values()} == {"hit"}
    assert second.output() == first.output()
    run_pipeline(ex.training, {"rows": 8, "lr": 0.9}, settings=settings)
    assert ran(calls) == ["train"]  # only the step whose param changed
    run_pipeline(ex.training, {"rows": 8, "factor": 3.0}, settings=settings)
    assert ran(calls) == ["features", "train"]  # the changed step and what depends on it
    run_pipeline(ex.training, {"rows": 8}, settings=settings, cache=False)
    assert ran(calls) == ["features", "load", "stats", "train"]


def test_the_code_digest_follows_project_helpers_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "steps_under_edit.py"
    body = (
        "from ferryml.pipelines import step\n\n"
        "def helper(x):\n    return x + {n}\n\n"
        "def unrelated():\n    return {m}\n\n"
        "@step\ndef work(x: int) -> int:\n    return helper(x)\n"
    )
    module.write_text(body.format(n=1, m=1))
    monkeypatch.syspath_prepend(str(tmp_path))
    steps = importlib.import_module("steps_under_edit")
    first = code_digest(steps.work.fn)
    module.write_text(body.format(n=1, m=2))
    steps = importlib.reload(steps)
    assert code_digest(steps.work.fn) == first
    module.write_text(body.format(n=2, m=2))
    steps = importlib.reload(steps)
    assert code_digest(steps.work.fn) != first
    sys.modules.pop("steps_under_edit", None)


def test_a_failed_step_stops_its_dependents_while_other_branches_finish(
    settings: Settings, calls: Path
) -> None:
    result = run_pipeline(ex.partly_broken, settings=settings)
    assert result.status == "FAILED"
    states = {n: s.status for n, s in result.steps.items()}
    assert states == {
        "load": "FINISHED",
        "broken": "FAILED",
        "after_broken": "SKIPPED",
        "stats": "FINISHED",
    }
    assert "after_broken" not in ran(calls)
    client = FerryClient(settings)
    run = client.get_run(result.run_id)
    assert run.info.status is RunStatus.FAILED
    assert "broken: ValueError: bad data in step" in (run.info.failure or "")
    broken = client.get_run(result.steps["broken"].run_id)
    assert "Traceback" in (broken.info.failure or "")
    client.close()
    assert result.errors() == {"broken": "ValueError: bad data in step"}
    why = (
        "step 'broken' failed: ValueError: bad data in step. See the traceback: "
        f"`ferry pipeline show {result.run_id} --traceback`."
    )
    with pytest.raises(InvalidArgument) as caught:
        result.output("after_broken")
    assert str(caught.value) == f"Step 'after_broken' has no output: it skipped; {why}"
    with pytest.raises(InvalidArgument) as caught:
        result.output("broken")
    assert str(caught.value) == f"Step 'broken' has no output: it failed; {why}"


def test_a_failed_run_resumes_with_finished_steps_from_the_cache(
    settings: Settings, calls: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.write_text("fail")
    failed = run_pipeline(ex.resumable, {"marker": str(marker)}, settings=settings, cache=False)
    assert failed.status == "FAILED"
    assert ran(calls) == ["fails_while", "load", "stats"]
    marker.unlink()
    resumed = run_pipeline(ex.resumable, settings=settings, resume=failed.run_id)
    assert resumed.status == "FINISHED"
    assert ran(calls) == ["fails_while"]
    assert resumed.output() == ({"rows": 6, "mean": 2.5}, "done")
    client = FerryClient(settings)
    assert client.get_run(resumed.run_id).data.tags["ferry.resumed_from"] == failed.run_id
    with pytest.raises(InvalidArgument, match="finished; there is nothing to resume"):
        run_pipeline(ex.resumable, settings=settings, resume=resumed.run_id)
    client.close()


def test_retries_with_backoff_until_the_step_succeeds(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(ex.retrying, {"marker": str(tmp_path / "tries")}, settings=settings)
    assert result.status == "FINISHED"
    assert result.output() == "ok after 3"
    assert result.steps["flaky"].attempts == 3


def test_a_step_past_its_timeout_fails(settings: Settings) -> None:
    started = time.monotonic()
    result = run_pipeline(ex.sleepy, {"seconds": 5.0}, settings=settings)
    assert time.monotonic() - started < 4
    assert result.status == "FAILED"
    assert "longer than its timeout of 0.5 s" in (result.steps["slow"].error or "")


def test_a_failed_validation_stops_the_step(settings: Settings) -> None:
    result = run_pipeline(ex.invalid_input, settings=settings)
    assert result.steps["features"].status == "FAILED"
    assert "ValidationFailed" in (result.steps["features"].error or "")
    assert "2 null values" in (result.steps["features"].error or "")


def test_an_output_that_cannot_be_stored_names_the_step_and_type(settings: Settings) -> None:
    result = run_pipeline(ex.bad_output, settings=settings)
    error = result.steps["unstorable"].error or ""
    assert "Step 'unstorable' returned a builtins.generator, which cannot be stored" in error


def test_bad_params_and_targets_are_refused_before_anything_is_recorded(settings: Settings) -> None:
    client = FerryClient(settings)
    with pytest.raises(
        InvalidArgument, match="has no parameter 'depth'; its parameters are: rows, lr, factor"
    ):
        run_pipeline(ex.training, {"depth": 3}, settings=settings)
    with pytest.raises(InvalidArgument, match="'rows' of 'training' must be int; got 'ten'"):
        run_target("example_pipelines:training", {"rows": "ten"}, settings=settings)
    assert client.list_experiments() == []
    with pytest.raises(InvalidArgument, match="Cannot import module 'no_such_module'"):
        load_target("no_such_module:p")
    with pytest.raises(NotFound, match="has no 'nope'"):
        load_target("example_pipelines:nope")
    with pytest.raises(InvalidArgument, match="is not a pipeline \\(it is of type Step\\)"):
        load_target("example_pipelines:load")
    with pytest.raises(InvalidArgument, match="must look like module:pipeline"):
        load_target("training")
    client.close()


def test_a_cycle_and_a_missing_input_are_clear_errors() -> None:
    graph = Graph()
    graph.nodes["a"] = Node("a", ex.load, {"x": "b"}, {})
    graph.nodes["b"] = Node("b", ex.load, {"x": "a"}, {})
    with pytest.raises(InvalidArgument, match="cycle: a -> b -> a"):
        graph.order()
    graph = Graph()
    graph.nodes["a"] = Node("a", ex.load, {"x": "ghost"}, {})
    with pytest.raises(InvalidArgument, match="takes the output of 'ghost'"):
        graph.order()
    with pytest.raises(InvalidArgument, match="Step 'train' was called wrongly"):
        Graph().add(ex.train, (), {})


def test_steps_outside_a_pipeline_are_plain_functions() -> None:
    assert ex.stats.fn is not None
    frame = ex.load.fn(4)
    assert ex.stats(frame) == {"rows": 4, "mean": 1.5}


def test_the_process_executor_gives_the_same_results_and_cache(
    settings: Settings, calls: Path
) -> None:
    local = run_pipeline(ex.training, {"rows": 12}, settings=settings)
    ran(calls)
    pooled = run_pipeline(
        ex.training, {"rows": 12}, settings=settings, executor="process", workers=2, cache=False
    )
    assert pooled.output() == local.output()
    assert ran(calls) == ["features", "load", "stats", "train"]
    hits = run_pipeline(ex.training, {"rows": 12}, settings=settings, executor="process", workers=2)
    assert {s.cache for s in hits.steps.values()} == {"hit"}
    broken = run_pipeline(ex.partly_broken, settings=settings, executor="process", workers=2)
    assert {n: s.status for n, s in broken.steps.items()}["after_broken"] == "SKIPPED"


def test_independent_steps_run_at_the_same_time_on_two_workers(settings: Settings) -> None:
    result = run_pipeline(
        ex.fan_out,
        {"n": 4, "seconds": 0.3},
        settings=settings,
        executor="process",
        workers=2,
        cache=False,
    )
    spans = sorted(result.output(node) for node in result.steps)
    overlapping = sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])
    assert result.status == "FINISHED"
    assert overlapping >= 1  # one after another, no span would start before the last ended


def test_a_sweep_runs_trials_as_siblings_and_reports_the_best(settings: Settings) -> None:
    result = sweep(
        ex.training,
        grid={"lr": [0.1, 0.5, 0.2]},
        metric="score",
        params={"rows": 6},
        executor="process",
        workers=2,
        settings=settings,
    )
    assert len(result.trials) == 3
    assert result.best_params == {"lr": 0.5}
    client = FerryClient(settings)
    parents = {client.get_run(r.run_id).info.parent_run_id for _, r in result.trials}
    assert parents == {result.run_id}
    parent = client.get_run(result.run_id)
    assert parent.data.tags["ferry.best_run"] == result.best_run_id
    assert parent.data.metrics["best_score"] == result.best_value
    client.close()


def test_random_sweeps_are_seeded_and_checked(settings: Settings) -> None:
    from ferryml.pipelines.sweep import _combinations

    draws = _combinations({}, {"lr": (0.0, 1.0), "rows": (2, 9)}, 4, seed=3)
    assert draws == _combinations({}, {"lr": (0.0, 1.0), "rows": (2, 9)}, 4, seed=3)
    assert all(isinstance(d["rows"], int) and 0 <= d["lr"] <= 1 for d in draws)
    with pytest.raises(InvalidArgument, match="has no parameter 'depth'"):
        sweep(ex.training, grid={"depth": [1]}, metric="score", settings=settings)
    with pytest.raises(InvalidArgument, match="must be a list of choices or a"):
        _combinations({}, {"lr": 0.5}, 2, 0)


def test_metrics_a_step_logs_go_to_its_run(settings: Settings) -> None:
    result = run_pipeline(ex.training, settings=settings)
    assert (
        ferry.FerryClient(settings).get_run(result.steps["train"].run_id).data.metrics["score"]
        == result.output()
    )
