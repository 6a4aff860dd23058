"""The ``ferry`` command: exit codes, exact messages, and ``--json`` output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.tracking.client import FerryClient


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def two_runs(home: Path, tmp_path: Path) -> list[str]:
    client = FerryClient(Settings.resolve(home=home, cwd=tmp_path, environ={}))
    experiment_id = client.create_experiment("cli")
    ids = []
    for i, model in enumerate(["rf", "lr"]):
        run_id = client.create_run(experiment_id, run_name=model).info.run_id
        client.log_batch(run_id, params={"model": model, "seed": 1})
        client.log_metric(run_id, "acc", 0.8 + i / 10)
        client.set_terminated(run_id)
        ids.append(run_id)
    client.close()
    return ids


def test_init_creates_the_store_and_reports_where(
    cli: Callable[..., tuple[int, str, str]], home: Path
) -> None:
    code, out, _ = cli("--home", str(home), "init", "--json")
    assert code == 0
    assert json.loads(out)["store"] == f"sqlite:///{home / 'ferry.db'}"
    assert (home / "ferry.db").is_file()


def test_experiments_list_json(
    cli: Callable[..., tuple[int, str, str]], home: Path, two_runs: list[str]
) -> None:
    code, out, _ = cli("--home", str(home), "experiments", "list", "--json")
    assert code == 0
    assert [e["name"] for e in json.loads(out)] == ["cli"]


def test_runs_list_filters_and_orders(
    cli: Callable[..., tuple[int, str, str]], home: Path, two_runs: list[str]
) -> None:
    code, out, _ = cli(
        "--home", str(home), "runs", "list", "-e", "cli", "-f", "params.model = 'rf'", "--json"
    )
    assert code == 0
    assert [r["info"]["run_id"] for r in json.loads(out)["runs"]] == [two_runs[0]]
    code, out, _ = cli("--home", str(home), "runs", "list", "-o", "metrics.acc DESC", "--json")
    assert [r["info"]["run_id"] for r in json.loads(out)["runs"]] == two_runs[::-1]
    code, out, _ = cli("--home", str(home), "runs", "list", "-n", "1")
    assert code == 0 and "More runs: --page-token" in out


def test_runs_show_and_compare(
    cli: Callable[..., tuple[int, str, str]], home: Path, two_runs: list[str]
) -> None:
    code, out, _ = cli("--home", str(home), "runs", "show", two_runs[0], "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["run"]["data"]["params"] == {"model": "rf", "seed": "1"}
    assert "environment/packages.txt" in [a["path"] for a in shown["artifacts"]]
    code, out, _ = cli("--home", str(home), "runs", "compare", *two_runs, "--json")
    rows = {(r["kind"], r["key"]): r for r in json.loads(out)["rows"]}
    assert rows[("param", "model")]["values"] == ["rf", "lr"]
    assert rows[("param", "model")]["differs"] is True
    assert rows[("param", "seed")]["differs"] is False
    code, out, _ = cli("--home", str(home), "runs", "compare", *two_runs)
    assert code == 0 and "params.model" in out


def test_runs_history_prints_every_step(
    cli: Callable[..., tuple[int, str, str]], home: Path, two_runs: list[str]
) -> None:
    code, out, _ = cli("--home", str(home), "runs", "history", two_runs[1], "acc", "--json")
    assert code == 0
    assert [m["value"] for m in json.loads(out)] == [0.9]


def test_runs_history_of_a_metric_the_run_never_logged_is_not_found(
    cli: Callable[..., tuple[int, str, str]], home: Path, two_runs: list[str]
) -> None:
    code, out, err = cli("--home", str(home), "runs", "history", two_runs[0], "accuracy")
    assert (code, out) == (1, "")
    assert err == (
        f"error: Run {two_runs[0]} has no metric 'accuracy'; its metrics are acc. See "
        f"`ferry runs show {two_runs[0]}`.\n"
    )


def test_unknown_run_is_one_line_and_exit_1(
    cli: Callable[..., tuple[int, str, str]], home: Path
) -> None:
    code, out, err = cli("--home", str(home), "runs", "show", "0" * 32)
    assert (code, out) == (1, "")
    assert err == f"error: Run '{'0' * 32}' not found. See `ferry runs list`.\n"


def test_malformed_run_id_is_one_line_and_exit_2(
    cli: Callable[..., tuple[int, str, str]], home: Path
) -> None:
    code, _, err = cli("--home", str(home), "runs", "show", "abc")
    assert code == 2
    assert err == (
        "error: Run id 'abc' is malformed: run ids are 32 lowercase hex "
        "characters. See `ferry runs list`.\n"
    )


def test_bad_filter_is_one_line_and_exit_2(
    cli: Callable[..., tuple[int, str, str]], home: Path
) -> None:
    code, _, err = cli("--home", str(home), "runs", "list", "-f", "metrics.acc >> 1")
    assert code == 2
    assert err == (
        "error: Invalid filter \"metrics.acc >> 1\": unexpected '>' at column 14; "
        "expected a value. Example: metrics.acc > 0.9 and params.model = 'rf'\n"
    )


def test_unknown_experiment_is_exit_1(cli: Callable[..., tuple[int, str, str]], home: Path) -> None:
    code, _, err = cli("--home", str(home), "runs", "list", "-e", "nope")
    assert code == 1
    assert err == "error: Experiment 'nope' not found. See `ferry experiments list`.\n"


def test_bad_usage_is_exit_2(cli: Callable[..., tuple[int, str, str]], home: Path) -> None:
    code, _, err = cli("--home", str(home), "runs", "bogus")
    assert code == 2 and "No such command 'bogus'" in err
    code, _, err = cli("--home", str(home), "runs", "list", "--max-results", "many")
    assert code == 2 and "--max-results" in err
    # a value the core refuses is bad usage too, not a failure
    code, _, err = cli("--home", str(home), "runs", "list", "--max-results", "0")
    assert (code, err) == (2, "error: max_results must be between 1 and 50000; got 0.\n")


def test_unwritable_home_is_one_line_and_exit_1(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = cli("--home", str(blocker / "home"), "init")
    assert code == 1
    assert err.startswith(f"error: Cannot create the store folder {blocker / 'home'}")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("content", [b"id,age\n1,34\n" * 100, b"SQLite format 3\0" + b"\xff" * 200])
def test_a_store_file_that_is_not_sqlite_is_named_in_one_line(
    cli: Callable[..., tuple[int, str, str]], home: Path, content: bytes
) -> None:
    home.mkdir()
    (home / "ferry.db").write_bytes(content)
    code, _, err = cli("--home", str(home), "experiments", "list")
    assert (code, err) == (
        1,
        f"error: The store file {home / 'ferry.db'} cannot be read as an SQLite database "
        "(file is not a database). Move it aside, or point FERRY_STORE (or FERRY_HOME) at "
        "another location.\n",
    )


def test_debug_shows_the_traceback(cli: Callable[..., tuple[int, str, str]], home: Path) -> None:
    code, _, err = cli("--home", str(home), "--debug", "runs", "show", "abc")
    assert code == 2 and "Traceback" in err and err.endswith("characters. See `ferry runs list`.\n")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["init"],
        ["experiments"],
        ["experiments", "list"],
        ["experiments", "create"],
        ["runs"],
        ["runs", "list"],
        ["runs", "show"],
        ["runs", "compare"],
        ["runs", "history"],
    ],
)
def test_every_command_has_help(
    cli: Callable[..., tuple[int, str, str]], home: Path, command: list[str]
) -> None:
    code, out, _ = cli("--home", str(home), *command, "--help")
    assert code == 0 and "Usage: ferry" in out
