"""``ferry artifacts list`` and ``ferry artifacts download``: what users see."""

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
def run_id(home: Path, tmp_path: Path) -> str:
    client = FerryClient(Settings.resolve(home=home, cwd=tmp_path, environ={}))
    run = client.create_run(client.create_experiment("e"), capture_environment=False).run_id
    client.log_text(run, "weights", "model/weights.bin")
    client.log_text(run, "{}", "model/config.json")
    client.log_text(run, "notes", "notes.txt")
    client.close()
    return run


def test_artifacts_list_shows_paths_sizes_and_digests(cli: Cli, home: Path, run_id: str) -> None:
    code, out, _ = cli("--home", str(home), "artifacts", "list", run_id, "--json")
    assert code == 0
    assert [(a["path"], a["size"]) for a in json.loads(out)] == [
        ("model/config.json", 2),
        ("model/weights.bin", 7),
        ("notes.txt", 5),
    ]
    code, out, _ = cli("--home", str(home), "artifacts", "list", run_id, "model")
    assert code == 0 and "model/weights.bin" in out and "notes.txt" not in out


def test_artifacts_download_copies_a_file_a_folder_or_everything(
    cli: Cli, home: Path, run_id: str, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = cli(
        "--home", str(home), "artifacts", "download", run_id, "notes.txt", "-d", str(out_dir)
    )
    assert (code, out) == (0, f"Downloaded 1 file (5 B) to {out_dir / 'notes.txt'}\n")
    assert (out_dir / "notes.txt").read_text() == "notes"

    code, out, _ = cli(
        "--home", str(home), "artifacts", "download", run_id, "model", "-d", str(out_dir)
    )
    assert (code, out) == (0, f"Downloaded 2 files (9 B) to {out_dir / 'model'}\n")
    assert (out_dir / "model" / "weights.bin").read_text() == "weights"

    everything = tmp_path / "all"
    code, out, _ = cli(
        "--home", str(home), "artifacts", "download", run_id, "-d", str(everything), "--json"
    )
    assert json.loads(out) == {"path": str(everything), "files": 3}
    assert sorted(str(p.relative_to(everything)) for p in everything.rglob("*.*")) == [
        "model/config.json",
        "model/weights.bin",
        "notes.txt",
    ]


def test_artifacts_download_of_a_missing_path_or_run_fails_with_one_line(
    cli: Cli, home: Path, run_id: str, tmp_path: Path
) -> None:
    code, out, err = cli("--home", str(home), "artifacts", "download", run_id, "nope.txt")
    assert (code, out) == (1, "")
    assert err == (
        f"error: Run {run_id} has no artifact 'nope.txt'. See `ferry artifacts list {run_id}`.\n"
    )
    code, _, err = cli("--home", str(home), "artifacts", "list", "0" * 32)
    assert (code, err) == (1, f"error: Run '{'0' * 32}' not found. See `ferry runs list`.\n")
