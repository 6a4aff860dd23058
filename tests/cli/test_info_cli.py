"""Which project a command works on: ``ferry info``, the line that announces a new store,
and commands run from a subfolder of the project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.tracking.client import FerryClient

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose store exists, entered from its subfolder ``notebooks/``."""
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_SERVER", "FERRY_REMOTE"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".git").mkdir()  # keeps the search for the project inside the test's folder
    (tmp_path / "notebooks").mkdir()
    client = FerryClient(Settings.resolve(cwd=tmp_path, environ={}))
    client.create_experiment("wine")
    client.close()
    monkeypatch.chdir(tmp_path / "notebooks")
    return tmp_path


def test_info_from_a_subfolder_names_the_project_above(cli: Cli, project: Path) -> None:
    (project / "ferry.yaml").write_text("artifacts: s3://bucket/ferry\n")
    code, out, err = cli("info")
    home = project / ".ferry"
    assert (code, err) == (0, "")
    assert out == (
        f"root:        {project}\n"
        f"config_file: {project / 'ferry.yaml'}\n"
        f"home:        {home}  (default)\n"
        f"store:       sqlite:///{home / 'ferry.db'}  (default)\n"
        "artifacts:   s3://bucket/ferry  (ferry.yaml)\n"
        "server:      none\n"
        "remote:      none\n"
    )


def test_info_json_hides_the_store_password(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_STORE", "postgresql+psycopg://ferry:hunter2@db:5432/ferry")
    code, out, _ = cli("info", "--json")
    shown = json.loads(out)
    assert code == 0
    assert (shown["root"], shown["config_file"]) == (str(project), None)
    assert shown["store"] == "postgresql+psycopg://ferry:***@db:5432/ferry"
    assert shown["sources"]["store"] == "FERRY_STORE"
    assert "hunter2" not in out


def test_init_from_a_subfolder_names_the_project_it_initialised(cli: Cli, project: Path) -> None:
    code, out, err = cli("init")
    home = project / ".ferry"
    assert (code, err) == (0, "")
    assert out == (
        f"ferryml store ready: sqlite:///{home / 'ferry.db'}\nartifacts: "
        f"{(home / 'artifacts').as_uri()}\nproject: {project}\n"
    )


def test_runs_list_from_a_subfolder_reads_the_projects_store(cli: Cli, project: Path) -> None:
    code, out, err = cli("experiments", "list", "--json")
    assert (code, err) == (0, "")
    assert [e["name"] for e in json.loads(out)] == ["wine"]
    assert not (project / "notebooks" / ".ferry").exists()


def test_a_command_that_creates_a_store_says_where_first(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.delenv("FERRY_HOME", raising=False)
    monkeypatch.delenv("FERRY_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("experiments", "list", "--json")
    assert (code, out) == (0, "[]\n")
    assert err == (
        f"ferry: new store sqlite:///{tmp_path / '.ferry' / 'ferry.db'} for project {tmp_path} "
        "(see `ferry info`)\n"
    )
    assert cli("experiments", "list", "--json") == (0, "[]\n", "")  # it exists now


def test_data_add_from_a_subfolder_names_the_data_from_the_project_root(
    cli: Cli, project: Path
) -> None:
    (project / "notebooks" / "wine.csv").write_text("a,b\n1,2\n")
    code, out, err = cli("data", "add", "wine.csv")
    assert (code, err) == (0, "")
    assert out == (
        "notebooks/wine.csv@1: 1 file, 8 B -> wine.csv.ferry\n"
        "wine.csv is listed in .gitignore; commit wine.csv.ferry and .gitignore.\n"
    )
    assert (project / "notebooks" / "wine.csv.ferry").is_file()
    code, out, _ = cli("data", "status", "--json")
    assert [s["path"] for s in json.loads(out)] == ["notebooks/wine.csv"]


def test_a_script_run_from_a_subfolder_logs_into_the_projects_store(project: Path) -> None:
    script = textwrap.dedent(
        """
        import ferryml as ferry
        ferry.set_experiment("wine")
        with ferry.start_run(run_name="from-notebooks"):
            ferry.log_metric("acc", 0.9)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project / "notebooks",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not (project / "notebooks" / ".ferry").exists()
    client = FerryClient(Settings.resolve(cwd=project, environ={}))
    runs = client.search_runs([client.get_experiment_by_name("wine").experiment_id])
    client.close()
    assert [r.info.run_name for r in runs.runs] == ["from-notebooks"]
