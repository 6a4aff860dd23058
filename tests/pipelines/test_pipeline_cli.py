"""``ferry pipeline …``: exit codes, exact messages, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferryml.cli import main


def ferry(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--home", str(home), *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_runs_and_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = ferry(
        capsys, tmp_path, "pipeline", "run", "example_pipelines:training", "-p", "rows=6", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "FINISHED" and set(result["steps"]) == {
        "load",
        "features",
        "stats",
        "train",
    }
    code, out, _ = ferry(
        capsys, tmp_path, "pipeline", "run", "example_pipelines:training", "-p", "rows=6"
    )
    assert code == 0 and "4 steps, 4 from the cache" in out
    code, out, _ = ferry(capsys, tmp_path, "pipeline", "runs", "--json")
    assert [r["data"]["tags"]["ferry.pipeline"] for r in json.loads(out)] == ["training"] * 2
    code, out, _ = ferry(capsys, tmp_path, "pipeline", "show", result["run_id"], "--json")
    steps = {s["node"]: s for s in json.loads(out)["steps"]}
    assert steps["train"]["upstream"] == ["features", "stats"]
    assert steps["load"]["status"] == "FINISHED"


def test_a_failing_pipeline_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = ferry(capsys, tmp_path, "pipeline", "run", "example_pipelines:partly_broken")
    assert code == 1
    assert "✗ broken" in out and "partly_broken FAILED" in out


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
            ["pipeline", "run", "example_pipelines:training", "--executor", "gpu"],
            "error: Unknown executor 'gpu': use local, process or dask.\n",
        ),
        (
            ["pipeline", "show", "0" * 32],
            f"error: Run '{'0' * 32}' not found. See `ferry runs list`.\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = ferry(capsys, tmp_path, *args)
    assert (code, err) == (1, message)


def test_sweep_reports_the_best_trial(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = ferry(
        capsys,
        tmp_path,
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


def test_a_refused_run_records_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ferry(capsys, tmp_path, "pipeline", "run", "example_pipelines:training", "--executor", "gpu")
    ferry(capsys, tmp_path, "pipeline", "run", "example_pipelines:training", "-p", "rows=x")
    code, out, _ = ferry(capsys, tmp_path, "runs", "list", "--json")
    assert json.loads(out)["runs"] == []
