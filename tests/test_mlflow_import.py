"""``ferry import mlflow`` of a store the real mlflow client wrote (SQLite): everything
arrives once, an interrupted import resumes, a missing artifact is reported and skipped."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.imports import import_mlflow, open_source
from mlflow_world import check_imported, ferry_cli, run_client

pytestmark = pytest.mark.e2e

RUNS = 100


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("mlflow-source")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    wrote = run_client("populate.py", dict(os.environ), uri, str(RUNS), cwd=folder)
    return uri, wrote, folder


def test_import_brings_everything_once(source: Any, tmp_path: Path) -> None:
    uri, wrote, _ = source
    check_imported(tmp_path / "home", uri, wrote)


def test_an_interrupted_import_resumes_and_a_missing_artifact_is_skipped(
    source: Any, tmp_path: Path
) -> None:
    uri, wrote, folder = source
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    db = f"sqlite:///{copy / 'mlflow.db'}"
    with sqlite3.connect(copy / "mlflow.db") as conn:  # the copy's paths name the copy
        for table, column in (
            ("runs", "artifact_uri"),
            ("logged_models", "artifact_location"),
            ("model_versions", "storage_location"),
        ):
            conn.execute(
                f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (str(folder), str(copy))
            )
    shutil.rmtree(next((copy / "mlruns").glob("*/models")))  # the logged model's files
    reader = open_source(db)
    settings = Settings.resolve(home=tmp_path / "home", environ={})

    def stop_after_50(kind: str, done: int, total: int) -> None:
        if kind == "runs" and done == 50:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            import_mlflow(reader, settings, progress=stop_after_50)
        report = import_mlflow(reader, settings)
    finally:
        reader.close()
    assert report.counts["runs already imported"] == 50
    assert report.counts["runs"] == wrote["runs"] - 50 and report.mismatches == []
    assert report.counts["model versions"] == 0 and len(report.problems) == 2, report.problems
    assert report.problems[0].startswith("logged model m-") and "no files at" in report.problems[0]
    assert report.problems[1].startswith("model line version 1: ")

    bad = ferry_cli(tmp_path / "other", "import", "mlflow", "s3://bucket/mlruns")
    assert (bad.returncode, bad.stderr) == (
        2,
        "error: Cannot import 's3://bucket/mlruns': name an mlruns/ folder, an MLflow tracking "
        "database (sqlite:///mlflow.db or postgresql://...) or an MLflow server "
        "(http://host:5000).\n",
    )
