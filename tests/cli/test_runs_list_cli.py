"""``ferry runs list`` columns and folding, ``runs show`` and ``runs compare`` headings."""

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
def runs(home: Path, tmp_path: Path) -> dict[str, str]:
    """A parent run with two children in 'wine', and one run in 'beer'."""
    client = FerryClient(Settings.resolve(home=home, cwd=tmp_path, environ={}))
    wine, beer = client.create_experiment("wine"), client.create_experiment("beer")
    ids = {}
    ids["sweep"] = client.create_run(wine, run_name="sweep", capture_environment=False).run_id
    for lr in ("0.1", "0.01"):
        child = client.create_run(
            wine, run_name=f"lr{lr}", parent_run_id=ids["sweep"], capture_environment=False
        ).run_id
        client.log_batch(child, params={"lr": lr})
        ids[f"lr{lr}"] = child
    ids["ale"] = client.create_run(beer, run_name="ale", capture_environment=False).run_id
    client.log_batch(ids["ale"], params={"lr": "0.5", "hops": "3"})
    client.log_metric(ids["ale"], "acc", 0.75)
    client.close()
    return ids


def _rows(out: str) -> list[list[str]]:
    """The cells of a rich table, row by row (borders dropped)."""
    return [
        [c.strip() for c in line.strip("│┃").split("│" if "│" in line else "┃")]
        for line in out.splitlines()
        if line.startswith(("│", "┃"))
    ]


def test_child_runs_are_folded_into_their_parents_unless_all(
    cli: Cli, home: Path, runs: dict[str, str]
) -> None:
    code, out, _ = cli("--home", str(home), "runs", "list", "-e", "wine")
    assert code == 0
    rows = _rows(out)
    assert rows[0][:2] == ["run_id", "name"] and "children" in rows[0]
    assert [r[1] for r in rows[1:]] == ["sweep"]
    assert rows[1][rows[0].index("children")] == "2"
    assert out.endswith("Child runs are folded into their parents; --all lists them.\n")

    code, out, _ = cli("--home", str(home), "runs", "list", "-e", "wine", "--json")
    assert json.loads(out)["child_runs"] == {runs["sweep"]: 2}
    code, out, _ = cli("--home", str(home), "runs", "list", "-e", "wine", "--all", "--json")
    assert sorted(r["info"]["run_name"] for r in json.loads(out)["runs"]) == [
        "lr0.01",
        "lr0.1",
        "sweep",
    ]
    code, out, _ = cli("--home", str(home), "runs", "list", "-e", "wine", "-f", "params.lr = '0.1'")
    assert _rows(out)[1:] == []  # the filter applies to top-level runs


def test_columns_show_params_and_metrics_and_the_experiment_when_several(
    cli: Cli, home: Path, runs: dict[str, str]
) -> None:
    code, out, _ = cli("--home", str(home), "runs", "list", "--columns", "params.lr,metrics.acc")
    assert code == 0
    rows = _rows(out)
    header = rows[0]
    assert header[-3:] == ["children", "params.lr", "metrics.acc"] and "experiment" in header
    by_name = {r[1]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert by_name["ale"]["params.lr"] == "0.5" and by_name["ale"]["metrics.acc"] == "0.75"
    assert by_name["ale"]["experiment"] == "beer" and by_name["sweep"]["experiment"] == "wine"

    code, out, _ = cli("--home", str(home), "runs", "list", "-e", "beer", "-c", "params.hops")
    assert "experiment" not in _rows(out)[0] and _rows(out)[1][-1] == "3"

    code, _, err = cli("--home", str(home), "runs", "list", "-c", "lr")
    assert (code, err) == (
        2,
        "error: Column 'lr' is not params.KEY, metrics.KEY or tags.KEY; "
        "e.g. --columns params.lr,metrics.acc.\n",
    )


def test_runs_show_names_the_experiment_and_compare_heads_by_name_and_short_id(
    cli: Cli, home: Path, runs: dict[str, str]
) -> None:
    code, out, _ = cli("--home", str(home), "runs", "show", runs["ale"])
    assert code == 0 and f"ale {runs['ale']}  RUNNING  experiment 'beer' (id 2)" in out
    code, out, _ = cli("--home", str(home), "runs", "show", runs["ale"], "--json")
    assert json.loads(out)["experiment"] == "beer"

    code, out, _ = cli("--home", str(home), "runs", "compare", runs["lr0.1"], runs["lr0.01"])
    assert code == 0
    assert _rows(out)[0] == [
        "",
        "key",
        f"lr0.1 {runs['lr0.1'][:8]}",
        f"lr0.01 {runs['lr0.01'][:8]}",
    ]


def test_deleting_a_folded_parent_deletes_its_children_and_says_so(
    cli: Cli, home: Path, runs: dict[str, str]
) -> None:
    code, out, _ = cli("--home", str(home), "runs", "delete", runs["sweep"])
    assert (code, out) == (
        0,
        f"Deleted run {runs['sweep']} and 2 child runs. Restore with `ferry runs restore "
        f"{runs['sweep']}`; `ferry gc` removes deleted runs for good.\n",
    )
    code, out, _ = cli("--home", str(home), "runs", "list", "--all", "-e", "wine", "--json")
    assert json.loads(out)["runs"] == []
    code, out, _ = cli("--home", str(home), "runs", "restore", runs["sweep"])
    assert (code, out) == (0, f"Restored run {runs['sweep']} and 2 child runs.\n")


def test_child_runs_are_counted_on_every_parent_of_a_long_page(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    client = FerryClient(Settings.resolve(home=home, cwd=tmp_path, environ={}))
    experiment_id = client.create_experiment("many")
    parents = [
        client.create_run(experiment_id, run_name=f"p{i}", capture_environment=False).run_id
        for i in range(501)
    ]
    client.create_run(experiment_id, parent_run_id=parents[-1], capture_environment=False)
    client.close()

    code, out, _ = cli(
        "--home", str(home), "runs", "list", "-o", "start_time", "-n", "1000", "--json"
    )
    assert code == 0
    found = json.loads(out)
    assert len(found["runs"]) == 501 and found["child_runs"] == {parents[-1]: 1}
