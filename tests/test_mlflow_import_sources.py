"""``ferry import mlflow`` of an ``mlruns/`` folder and of a running ``mlflow server``, both
written by the real mlflow client in the test: everything arrives once, an interrupted
import resumes, damaged parts are reported by name and skipped, an unreachable server or
a missing folder is one line."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.imports import import_mlflow, open_source
from ferryml.store.sql import SqlStore
from mlflow_world import check_imported, ferry_cli, mlflow_server, run_client

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Any]]:
    """An mlruns/ folder and a running mlflow server, the same history in each (one client
    process writes both)."""
    folder = tmp_path_factory.mktemp("mlflow-stores")
    with mlflow_server(folder / "server") as url:
        mlruns = folder / "mlruns"
        env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
        wrote = run_client("populate_stores.py", env, f"file:{mlruns}", url, cwd=folder)
        yield mlruns, url, {"folder": wrote[f"file:{mlruns}"], "server": wrote[url]}


def test_an_mlruns_folder_is_imported_whole_and_once(stores: Any, tmp_path: Path) -> None:
    mlruns, _, wrote = stores
    check_imported(tmp_path / "home", str(mlruns), wrote["folder"])


def test_an_mlflow_server_is_imported_whole_and_once(stores: Any, tmp_path: Path) -> None:
    _, url, wrote = stores
    check_imported(tmp_path / "home", url, wrote["server"])


def test_damaged_parts_of_a_folder_are_skipped_by_name_and_an_import_resumes(
    stores: Any, tmp_path: Path
) -> None:
    mlruns, _, wrote = stores
    copy = tmp_path / "mlruns"  # moved: its meta.yaml files still name the old paths
    shutil.copytree(mlruns, copy)
    bulk = next(p.parent for p in copy.glob("*/meta.yaml") if "name: bulk" in p.read_text())
    folders = [p.parent for p in bulk.glob("*/meta.yaml")]
    by_name = {(p / "tags" / "mlflow.runName").read_text(): p for p in folders}
    runs = [by_name["r0"], by_name["r1"]]  # the first two to start: the import goes by start
    (runs[0] / "meta.yaml").write_text("run_id: [unclosed\n")
    (runs[1] / "metrics" / "m0").write_text("1700000000000 not-a-number 0\n")
    shutil.rmtree(next(copy.glob("*/models/m-*")) / "artifacts")
    settings = Settings.resolve(home=tmp_path / "home", environ={})

    def stop_after_10(kind: str, done: int, total: int) -> None:
        if kind == "runs" and done == 10:
            raise KeyboardInterrupt

    reader = open_source(str(copy))
    try:
        with pytest.raises(KeyboardInterrupt):
            import_mlflow(reader, settings, progress=stop_after_10)
    finally:
        reader.close()
    reader = open_source(str(copy))
    try:
        report = import_mlflow(reader, settings)
    finally:
        reader.close()
    counts = report.counts
    assert counts["runs already imported"] == 9  # r2 to r10; r1 failed, r0 was never read
    assert counts["runs"] == wrote["folder"]["runs"] - 2 - 9 and report.mismatches == []
    meta, metric, logged, version = report.problems
    assert logged.startswith("logged model m-") and "no files at" in logged
    assert version.startswith("model line version 1: ")
    assert meta == (
        f"run {runs[0].name}: {runs[0] / 'meta.yaml'} cannot be read (while parsing a flow "
        "sequence)"
    )
    assert metric == (
        f"run {runs[1].name} (r1): metric m0: line 1 of {runs[1] / 'metrics' / 'm0'} "
        "('1700000000000 not-a-number 0') is not 'timestamp value step'"
    )
    store = SqlStore(settings.store_url).open()
    try:  # the moved folder's artifacts were found where they are now
        assert {a.path for a in store.list_artifacts(wrote["folder"]["parent"])} == {
            "notes/hello.txt",
            "config.json",
        }
    finally:
        store.close()


def test_an_unreachable_server_or_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    from serving.serving_net import free_port

    url = f"http://127.0.0.1:{free_port()}"
    down = ferry_cli(tmp_path / "home", "import", "mlflow", url)
    assert down.returncode == 1 and down.stderr.count("\n") == 1, down.stderr
    assert down.stderr.startswith(f"error: The MLflow server at {url} did not answer ")
    assert "Is `mlflow server` running there?" in down.stderr
    missing = ferry_cli(tmp_path / "home", "import", "mlflow", str(tmp_path / "nowhere"))
    assert (missing.returncode, missing.stderr) == (
        1,
        f"error: No MLflow store at {tmp_path / 'nowhere'}: name an mlruns/ folder, an MLflow "
        "database (sqlite:///mlflow.db) or an MLflow server's URL.\n",
    )


def test_a_server_that_asks_for_credentials_is_imported_with_the_mlflow_clients_variables(
    tmp_path: Path,
) -> None:
    from server.team_world import running_server

    # A ferry server speaks MLflow's API with tokens on: the source here, as a team's
    # mlflow server behind a proxy that checks tokens would be.
    store_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = SqlStore(store_url).open()
    experiment = source.create_experiment("guarded")
    run_id = source.create_run(experiment, run_name="kept", start_time=1000, user="u").run_id
    source.close()
    for server in running_server(store_url, tmp_path):
        home = tmp_path / "home"
        refused = ferry_cli(home, "import", "mlflow", server.url)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert "asks for credentials (HTTP 401" in refused.stderr
        assert "Set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and" in refused.stderr
        token = {"MLFLOW_TRACKING_TOKEN": server.tokens["reader"]}
        done = ferry_cli(home, "import", "mlflow", server.url, "--json", env=token)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["counts"]["runs"] == 1
        basic = {"MLFLOW_TRACKING_USERNAME": "reader", "MLFLOW_TRACKING_PASSWORD": "wrong"}
        wrong = ferry_cli(home, "import", "mlflow", server.url, env=basic)
        assert "asks for credentials (HTTP 401" in wrong.stderr
        basic["MLFLOW_TRACKING_PASSWORD"] = server.tokens["reader"]
        again = ferry_cli(home, "import", "mlflow", server.url, env=basic)
        assert again.returncode == 0, again.stderr
    store = SqlStore(Settings.resolve(home=home, environ={}).store_url).open()
    try:  # one run, though imported twice
        (found,) = store.search_runs([store.get_experiment_by_name("guarded").experiment_id])[0]
        assert found.info.run_name == "kept" and found.info.run_id == run_id
    finally:
        store.close()
