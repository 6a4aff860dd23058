"""``ferry data …``: exit codes, exact messages, ``--json``."""

from __future__ import annotations

import json
import marshal
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_REMOTE"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "data").mkdir()
    for i in range(5):
        (tmp_path / "data" / f"{i}.txt").write_text(str(i))
    pd.DataFrame({"age": [30, 40, 150]}).to_csv(tmp_path / "people.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_add_status_checkout_log_ls(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    code, out, _ = cli("data", "add", "data")
    assert (code, out) == (0, "data@1: 5 files, 5 B -> data.ferry\n")
    (project / "data" / "0.txt").write_text("changed")
    code, out, _ = cli("data", "status", "--json")
    assert json.loads(out)[0]["modified"] == ["0.txt"]
    code, out, _ = cli("data", "add", "data", "--json")
    assert json.loads(out)["version"] == 2
    shutil.rmtree(project / "data")
    code, out, _ = cli("data", "checkout", "data@1")
    assert (code, out) == (
        0,
        "data: version 1, 5 files written; data.ferry moved from version 2 to 1\n",
    )
    assert (project / "data" / "0.txt").read_text() == "0"
    code, out, _ = cli("data", "log", "data", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    code, out, _ = cli("data", "ls", "--json")
    assert [(v["name"], v["version"]) for v in json.loads(out)] == [("data", 2)]
    code, out, _ = cli("data", "diff", "data@1", "data@2", "--json")
    assert json.loads(out)["modified"] == ["0.txt"]


def test_validate_exits_1_on_failure_and_writes_html(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    (project / "ferry.yaml").write_text(
        "data:\n  people.csv:\n    expectations:\n      - range: {column: age, max: 120}\n"
    )
    cli("data", "add", "people.csv")
    code, out, _ = cli("data", "validate", "people.csv", "--json", "--html", "report.html")
    assert code == 1
    (result,) = json.loads(out)["results"]
    assert result["passed"] is False and "150" in result["message"]
    assert "range" in (project / "report.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "add", "missing"], "error: Path 'missing' does not exist. Check the path.\n"),
        (["data", "log", "nope"], "error: Dataset 'nope' not found. See `ferry data ls`.\n"),
        (
            ["data", "checkout", "data@7"],
            "error: Dataset 'data' has no version 7. See `ferry data log data`.\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    cli: Callable[..., tuple[int, str, str]], project: Path, args: list[str], message: str
) -> None:
    cli("data", "add", "data")
    code, out, err = cli(*args)
    assert (code, err) == (1, message)


def test_push_with_no_remote_is_bad_usage_exit_2(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    cli("data", "add", "data")
    code, _, err = cli("data", "push")
    assert (code, err) == (
        2,
        "error: No remote given: pass --remote s3://bucket/prefix, or set FERRY_REMOTE "
        "(or `remote:` in ferry.yaml).\n",
    )


@pytest.mark.parametrize(
    "command", ["add", "status", "checkout", "diff", "ls", "log", "push", "pull", "validate"]
)
def test_every_data_command_has_help(
    cli: Callable[..., tuple[int, str, str]], command: str
) -> None:
    code, out, _ = cli("data", command, "--help")
    assert code == 0 and "Usage: ferry data" in out


def test_checkout_of_a_version_moves_the_pointer_or_says_it_did_not(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    cli("data", "add", "data")
    (project / "data" / "0.txt").write_text("v2")
    cli("data", "add", "data")

    code, out, _ = cli("data", "checkout", "data@1")
    assert (code, out) == (
        0,
        "data: version 1, 1 files written; data.ferry moved from version 2 to 1\n",
    )
    code, out, _ = cli("data", "status")
    assert out == "data: up to date with data@1\n"
    code, out, _ = cli("data", "checkout", "data@1")
    assert out == "data: version 1, 0 files written; data.ferry names version 1 already\n"
    code, out, _ = cli("data", "checkout", "data@2", "--to", "copy")
    assert out == (
        "copy: version 2, 5 files written; no pointer file moved: --to restores a copy\n"
    )
    assert "version: 1" in (project / "data.ferry").read_text()


def test_add_lists_the_data_in_a_gitignore_beside_it_in_a_git_repository(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    code, out, _ = cli("data", "add", "data")
    assert not (project / ".gitignore").exists()  # not a git repository: nothing to ignore in

    (project / ".git").mkdir()
    (project / ".gitignore").write_text("*.pyc")
    (project / "sub").mkdir()
    (project / "sub" / "t.csv").write_text("a\n1\n")
    code, out, _ = cli("data", "add", "data")
    assert code == 0
    assert out.endswith("data is listed in .gitignore; commit data.ferry and .gitignore.\n")
    cli("data", "add", "sub/t.csv")
    cli("data", "add", "data")  # listed once, however often it is added

    assert (project / ".gitignore").read_text() == "*.pyc\n/data\n"
    assert (project / "sub" / ".gitignore").read_text() == "/t.csv\n"


def test_diff_lists_files_and_compares_tables_inside_folders_without_raw_json(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    pd.DataFrame({"age": [30, 40], "city": ["a", "b"]}).to_csv(
        project / "data" / "t.csv", index=False
    )
    cli("data", "add", "data")
    (project / "data" / "0.txt").unlink()
    (project / "data" / "new.txt").write_text("new")
    pd.DataFrame({"age": [30.5, 41.0, 50.0]}).to_csv(project / "data" / "t.csv", index=False)
    cli("data", "add", "data")

    code, out, _ = cli("data", "diff", "data@1", "data@2")
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == [
        "data@1 -> data@2: 1 added, 1 removed, 1 modified",
        "  added    new.txt",
        "  removed  0.txt",
        "  modified t.csv",
    ]
    assert "table t.csv: rows 2 -> 3" in lines
    assert "t.csv: schema: - city; age: integer -> float" in lines
    assert "{" not in out
    code, out, _ = cli("data", "diff", "data@1", "data@2", "--json")
    table = json.loads(out)["tables"][0]
    assert (table["path"], table["rows"], table["schema"]["removed"]) == ("t.csv", [2, 3], ["city"])


def test_a_diff_of_two_datasets_says_so_and_shows_no_unknown_row_counts(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    cli("data", "add", "data")
    cli("data", "add", "people.csv")

    code, out, _ = cli("data", "diff", "data@1", "people.csv@1")
    assert code == 0
    assert out.splitlines()[0] == (
        "data@1 and people.csv@1 are different datasets (folder and table); comparing their "
        "contents."
    )
    assert "rows" not in out and "None" not in out


def test_a_damaged_hash_cache_or_row_of_it_costs_a_reread_not_the_commands(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    assert cli("data", "add", "data")[0] == 0
    (db,) = project.glob(".ferry/cache/hashes-v3-*.db")
    with sqlite3.connect(db) as conn:  # a row that loads, of the wrong shape
        conn.execute("UPDATE folders SET files = ?", (marshal.dumps({"0.txt": (1, 2)}),))
    conn.close()
    code, out, _ = cli("data", "status", "--json")
    assert (code, json.loads(out)[0]["modified"]) == (0, [])
    db.write_bytes(b"not a database" * 1000)
    code, out, _ = cli("data", "status", "--json")
    assert (code, json.loads(out)[0]["modified"]) == (0, [])
    (project / "data" / "0.txt").write_text("changed")
    code, out, _ = cli("data", "add", "data")
    assert (code, out) == (0, "data@2: 5 files, 11 B -> data.ferry\n")
