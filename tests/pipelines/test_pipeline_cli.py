"""``ferry pipeline …``: exit codes, exact messages, --json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest


def test_run_runs_and_show(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    code, out, _ = cli(
        "--home",
        str(tmp_path),
        "pipeline",
        "run",
        "example_pipelines:training",
        "-p",
        "rows=6",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "FINISHED" and set(result["steps"]) == {
        "load",
        "features",
        "stats",
        "train",
    }
    code, out, _ = cli(
        "--home", str(tmp_path), "pipeline", "run", "example_pipelines:training", "-p", "rows=6"
    )
    assert code == 0 and "4 steps, 4 from the cache" in out
    code, out, _ = cli("--home", str(tmp_path), "pipeline", "runs", "--json")
    assert [r["data"]["tags"]["ferry.pipeline"] for r in json.loads(out)] == ["training"] * 2
    code, out, _ = cli("--home", str(tmp_path), "pipeline", "show", result["run_id"], "--json")
    steps = {s["node"]: s for s in json.loads(out)["steps"]}
    assert steps["train"]["upstream"] == ["features", "stats"]
    assert steps["load"]["status"] == "FINISHED"


def test_a_failing_pipeline_exits_1_with_the_error_and_where_its_traceback_is(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, out, err = cli(
        "--home", str(tmp_path), "pipeline", "run", "example_pipelines:partly_broken"
    )
    assert code == 1
    assert "✗ broken" in out and "partly_broken FAILED" in out
    run_id = out.split("FAILED: run ")[1].split(",")[0]
    assert err == (
        "error: step 'broken' failed: ValueError: bad data in step. See the traceback: "
        f"`ferry pipeline show {run_id} --traceback`.\n"
    )
    code, out, _ = cli("--home", str(tmp_path), "pipeline", "show", run_id, "--traceback")
    assert code == 0
    assert "broken: Traceback (most recent call last):" in out
    assert 'raise ValueError("bad data in step")' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["pipeline", "run", "example_pipelines:training", "-p", "depth=3"],
            "error: Pipeline 'training' has no parameter 'depth'; its parameters are: rows, lr, "
            "factor.\n",
        ),
        (
            ["pipeline", "run", "example_pipelines:training", "-p", "rows"],
            "error: Parameter 'rows' must look like name=value.\n",
        ),
        (
            ["pipeline", "run", "nowhere:training"],
            "error: Cannot import module 'nowhere' for 'nowhere:training': No module named "
            "'nowhere'. Run from the folder that holds it, or install it.\n",
        ),
        (
            ["pipeline", "run", "example_pipelines"],
            "error: Pipeline target 'example_pipelines' must look like module:pipeline, e.g. "
            "train:training.\n",
        ),
        (
            ["pipeline", "run", "example_pipelines:training", "--executor", "gpu"],
            "error: Unknown executor 'gpu': use local, process or dask.\n",
        ),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = cli("--home", str(tmp_path), *args)
    assert (code, err) == (2, message)


def test_a_resume_with_changed_params_is_refused_with_the_reason(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    home = ("--home", str(tmp_path))
    code, out, _ = cli(*home, "pipeline", "run", "example_pipelines:partly_broken", "-p", "rows=7",
                       "--json")  # fmt: skip
    failed = json.loads(out)["run_id"]
    assert code == 1
    resume = (*home, "pipeline", "run", "example_pipelines:partly_broken", "--resume", failed)
    code, out, err = cli(*resume, "-p", "rows=3")
    assert (code, out) == (2, "")
    assert err == (
        f"error: Run {failed} ran with rows=7; a resume reruns it with the same params. Drop "
        "--resume to start a new run with -p rows=3 (unchanged steps come from the cache).\n"
    )
    code, out, _ = cli(*resume, "-p", "rows=7", "--json")  # the same value: a resume
    assert code == 1 and json.loads(out)["steps"]["load"]["cache"] == "hit"
    code, out, _ = cli(*home, "runs", "show", json.loads(out)["run_id"], "--json")
    assert json.loads(out)["run"]["data"]["params"]["rows"] == "7"


def test_an_unknown_run_is_one_line_and_exit_1(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, _, err = cli("--home", str(tmp_path), "pipeline", "show", "0" * 32)
    assert (code, err) == (1, f"error: Run '{'0' * 32}' not found. See `ferry runs list`.\n")


def test_sweep_reports_the_best_trial(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, out, _ = cli(
        "--home",
        str(tmp_path),
        "pipeline",
        "sweep",
        "example_pipelines:training",
        "--metric",
        "score",
        "--grid",
        "lr=0.1,0.3",
        "-p",
        "rows=4",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["best_params"] == {"lr": 0.3}


def test_a_refused_run_records_nothing(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    cli(
        "--home",
        str(tmp_path),
        "pipeline",
        "run",
        "example_pipelines:training",
        "--executor",
        "gpu",
    )
    cli("--home", str(tmp_path), "pipeline", "run", "example_pipelines:training", "-p", "rows=x")
    code, out, _ = cli("--home", str(tmp_path), "runs", "list", "--json")
    assert json.loads(out)["runs"] == []
