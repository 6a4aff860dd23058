"""FerryClient: the tracking API by run id."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ferryml.store.entities import Metric, RunStatus
from ferryml.tracking._journal import Journal
from ferryml.tracking.client import FerryClient, Param, RunTag


def _run_id(client: FerryClient) -> str:
    return client.create_run(client.create_experiment("c"), run_name="r").info.run_id


def test_unknown_run_id_is_not_found_and_malformed_is_invalid(client: FerryClient) -> None:
    with pytest.raises(NotFound, match=f"Run '{'a' * 32}' not found. See `ferry runs list`"):
        client.log_metric("a" * 32, "m", 1.0)
    with pytest.raises(InvalidArgument, match="Run id 'nope' is malformed"):
        client.log_param("nope", "k", "v")


def test_log_batch_takes_objects_or_mappings_and_checks_everything_first(
    client: FerryClient,
) -> None:
    run_id = _run_id(client)
    client.log_batch(
        run_id,
        metrics=[Metric("a", 1.0, 1000, 0), Metric("a", 2.0, 2000, 1)],
        params=[Param("p", "1")],
        tags=[RunTag("t", "x")],
    )
    with pytest.raises(InvalidArgument, match="metric values must be numbers"):
        client.log_batch(run_id, metrics=[Metric("b", 1.0, 1, 0), Metric("c", "x", 1, 0)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="Expected a mapping or Param/RunTag objects"):
        client.log_batch(run_id, params=["p=1"])
    with pytest.raises(Conflict, match="Param 'p'"):
        client.log_batch(run_id, params={"q": "1", "p": "2"})
    run = client.get_run(run_id)
    assert dict(run.data.metrics) == {"a": 2.0}
    assert dict(run.data.params) == {"p": "1"}


def test_a_param_logged_by_another_process_cannot_change_here(
    settings: Settings, tmp_path: Path
) -> None:
    first = FerryClient(settings)
    run_id = _run_id(first)
    first.log_param(run_id, "lr", "0.1")
    first.close()
    second = FerryClient(settings)
    with pytest.raises(Conflict, match="is '0.1' already"):
        second.log_param(run_id, "lr", "0.2")
    second.close()


def test_experiment_names_are_unique_and_checked(client: FerryClient) -> None:
    client.create_experiment("dup")
    with pytest.raises(AlreadyExists, match="Experiment 'dup' already exists"):
        client.create_experiment("dup")
    with pytest.raises(InvalidArgument, match="Experiment name '' is invalid"):
        client.create_experiment("")


def test_ending_a_run_checks_the_status(client: FerryClient) -> None:
    run_id = _run_id(client)
    with pytest.raises(InvalidArgument, match="not one of FINISHED, FAILED, KILLED"):
        client.set_terminated(run_id, "DONE")
    with pytest.raises(InvalidArgument, match="cannot be ended as RUNNING"):
        client.set_terminated(run_id, "RUNNING")
    client.set_terminated(run_id, "KILLED")
    assert client.get_run(run_id).info.status is RunStatus.KILLED


def test_page_tokens_walk_the_results_and_bad_tokens_are_refused(client: FerryClient) -> None:
    experiment_id = client.create_experiment("pages")
    made = {client.create_run(experiment_id).info.run_id for _ in range(5)}
    seen: list[str] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=2, page_token=token)
        seen += [r.info.run_id for r in page.runs]
        token = page.token
        if token is None:
            break
    assert sorted(seen) == sorted(made)
    with pytest.raises(InvalidArgument, match="Page token 'garbage' is invalid"):
        client.search_runs([experiment_id], page_token="garbage")


def test_numeric_params_order_as_numbers(client: FerryClient) -> None:
    experiment_id = client.create_experiment("trees")
    for n in (50, 100, 10):
        client.log_param(client.create_run(experiment_id, run_name=f"n{n}").info.run_id,
                         "n_estimators", n)  # fmt: skip
    page = client.search_runs([experiment_id], order_by=["params.n_estimators DESC"])
    assert [r.info.run_name for r in page.runs] == ["n100", "n50", "n10"]


def test_the_journal_is_rotated_once_applied_and_keeps_open_runs(
    sqlite_settings: Settings,
) -> None:
    from ferryml.store.sql import SqlStore

    store = SqlStore(sqlite_settings.store_url).open()
    journal = Journal(sqlite_settings.journal_dir, store, rotate_bytes=1000).open()
    experiment_id = store.create_experiment("rot")
    run_id = store.create_run(experiment_id, run_name="r", start_time=1, user="u").run_id
    from ferryml.store.records import StartRecord

    journal.append([StartRecord(run_id)])
    for i in range(100):
        journal.append_metric(run_id, "m", float(i), 1000 + i, i)
    journal.flush()
    (path,) = sqlite_settings.journal_dir.glob("*.journal")
    assert path.read_text() == f'["r", "{run_id}"]\n'
    assert len(store.get_metric_history(run_id, "m")) == 100
    journal.close()
    store.close()
    assert not path.exists()


def test_a_forked_child_logs_through_a_journal_of_its_own(sqlite_settings: Settings) -> None:
    code = textwrap.dedent(f"""
        import os
        from ferryml.config import Settings
        from ferryml.tracking.client import FerryClient
        client = FerryClient(Settings.resolve(home={str(sqlite_settings.home)!r}))
        run_id = client.create_run(client.create_experiment("fork")).info.run_id
        client.log_metric(run_id, "parent", 1.0)
        pid = os.fork()
        if pid == 0:
            client.log_metric(run_id, "child", 2.0)
            client.close()
            os._exit(0)
        os.waitpid(pid, 0)
        client.close()
        print(run_id)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    client = FerryClient(sqlite_settings)
    assert dict(client.get_run(done.stdout.strip()).data.metrics) == {"parent": 1.0, "child": 2.0}
    client.close()
    assert list(sqlite_settings.journal_dir.glob("*.journal")) == []
