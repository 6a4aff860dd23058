"""``ferry import mlflow`` of a store the real mlflow client wrote (SQLite): everything
arrives once, an interrupted import resumes, a missing artifact is reported and skipped."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.imports import import_mlflow, open_source
from ferryml.registry.models import Registry
from ferryml.store.artifacts import ArtifactStore
from ferryml.store.sql import SqlStore
from mlflow_world import run_client

pytestmark = pytest.mark.e2e

FERRY = str(Path(sys.executable).with_name("ferry"))
RUNS = 100


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("mlflow-source")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    wrote = run_client("populate.py", dict(os.environ), uri, str(RUNS), cwd=folder)
    return uri, wrote, folder


def _ferry(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "FERRY_HOME": str(home), "HOME": str(home)}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    return subprocess.run([FERRY, *args], env=env, capture_output=True, text=True, check=False)


def test_import_brings_everything_once(source: Any, tmp_path: Path) -> None:
    uri, wrote, _ = source
    home = tmp_path / "home"
    done = _ferry(home, "import", "mlflow", uri, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counts = report["counts"]
    assert counts["runs"] == wrote["runs"] and report["mismatches"] == []
    assert counts["metric values"] == RUNS * 9 + 10_000 + 2
    assert (counts["registered models"], counts["model versions"], counts["aliases"]) == (1, 1, 1)
    assert report["checked_runs"] == wrote["runs"] and report["problems"] == []

    settings = Settings.resolve(home=home, environ={})
    store = SqlStore(settings.store_url).open()
    try:
        parent = store.get_run(wrote["parent"])
        assert parent.info.run_name == "parent" and parent.data.params == {"alpha": "0.5"}
        history = store.get_metric_history(wrote["parent"], "loss")
        assert [m.step for m in history] == list(range(10_000))
        children = store.search_runs(
            [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{wrote['parent']}'"
        )[0]
        assert {c.info.parent_run_id for c in children} == {wrote["parent"]} and len(children) == 2
        files = {a.path: a.digest for a in store.list_artifacts(wrote["parent"])}
        artifacts = ArtifactStore(settings.artifacts_url).open()
        assert artifacts.get_bytes(files["notes/hello.txt"]) == b"hello"
        assert [(i.name, i.context) for i in parent.inputs] == [("train", "training")]
    finally:
        store.close()
    registry = Registry(settings)
    try:
        model = registry.load("models:/line@champion")
        assert model.predict([{"x": 4.0}]).tolist() == pytest.approx([4.0])
        assert registry.version("line@champion").tags["validated"] == "yes"
    finally:
        registry.close()

    again = _ferry(home, "import", "mlflow", uri, "--json")
    counts = json.loads(again.stdout)["counts"]
    assert counts.get("runs", 0) == 0 and counts["runs already imported"] == wrote["runs"]
    assert counts.get("metric values", 0) == 0 and counts.get("model versions", 0) == 0


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

    bad = _ferry(tmp_path / "other", "import", "mlflow", "s3://bucket/mlruns")
    assert (bad.returncode, bad.stderr) == (
        2,
        "error: Cannot import 's3://bucket/mlruns': name an MLflow tracking database "
        "(sqlite:///mlflow.db or postgresql://...).\n",
    )
