"""``ferry runs delete/restore``, ``ferry experiments delete/restore``: what users see."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.tracking.client import FerryClient

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def run_ids(home: Path, tmp_path: Path) -> list[str]:
    client = FerryClient(Settings.resolve(home=home, cwd=tmp_path, environ={}))
    experiment_id = client.create_experiment("wine")
    ids = [client.create_run(experiment_id, run_name=n).run_id for n in ("a", "b")]
    client.close()
    return ids


def _listed(cli: Cli, home: Path, *args: str) -> list[str]:
    code, out, _ = cli("--home", str(home), "runs", "list", "--json", *args)
    assert code == 0
    return [r["info"]["run_id"] for r in json.loads(out)["runs"]]


def test_runs_delete_hides_runs_and_restore_brings_them_back(
    cli: Cli, home: Path, run_ids: list[str]
) -> None:
    a, b = run_ids
    code, out, _ = cli("--home", str(home), "runs", "delete", a)
    assert code == 0
    assert out == (
        f"Deleted run {a}. Restore with `ferry runs restore {a}`; `ferry gc` removes deleted "
        "runs for good.\n"
    )
    assert _listed(cli, home) == [b]
    assert _listed(cli, home, "--view", "deleted_only") == [a]
    assert sorted(_listed(cli, home, "--view", "all")) == sorted(run_ids)

    code, out, _ = cli("--home", str(home), "runs", "show", a)
    assert (
        f"deleted: restore it with `ferry runs restore {a}`; `ferry gc` removes it for good"
        in out.splitlines()
    )

    code, out, _ = cli("--home", str(home), "runs", "restore", a)
    assert (code, out) == (0, f"Restored run {a}.\n")
    code, out, _ = cli("--home", str(home), "runs", "show", a)
    assert "deleted:" not in out
    assert sorted(_listed(cli, home)) == sorted(run_ids)


def test_runs_delete_of_an_unknown_run_fails_with_one_line(
    cli: Cli, home: Path, run_ids: list[str]
) -> None:
    code, out, err = cli("--home", str(home), "runs", "delete", "f" * 32)
    assert (code, out) == (1, "")
    assert err == f"error: Run '{'f' * 32}' not found. See `ferry runs list`.\n"
    code, _, err = cli("--home", str(home), "runs", "list", "--view", "gone")
    assert code == 2 and "Invalid value for '--view'" in err


def test_experiments_delete_and_restore_by_name(cli: Cli, home: Path, run_ids: list[str]) -> None:
    code, out, _ = cli("--home", str(home), "experiments", "delete", "wine")
    assert code == 0
    assert out == (
        "Deleted experiment 'wine' and its runs. Restore them with "
        "`ferry experiments restore wine`; `ferry gc` removes them for good.\n"
    )
    code, out, _ = cli("--home", str(home), "experiments", "list", "--json")
    assert json.loads(out) == []
    assert _listed(cli, home) == []
    code, out, _ = cli("--home", str(home), "experiments", "list", "--view", "deleted_only")
    assert code == 0 and "wine" in out and "deleted" in out

    code, out, _ = cli("--home", str(home), "experiments", "restore", "wine")
    assert (code, out) == (0, "Restored experiment 'wine' and its runs.\n")
    assert sorted(_listed(cli, home)) == sorted(run_ids)

    code, _, err = cli("--home", str(home), "experiments", "delete", "beer")
    assert code == 1
    assert err == "error: Experiment 'beer' not found. See `ferry experiments list --view all`.\n"
