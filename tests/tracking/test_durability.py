"""Nothing is lost, nothing blocks: real processes, killed and racing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.store.entities import RunStatus
from ferryml.store.sql import SqlStore
from ferryml.tracking.client import FerryClient

pytestmark = pytest.mark.e2e


def _python(code: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FERRY_HOME": str(home)}
    env.pop("FERRY_STORE", None)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


KILLED_CHILD = """
    import os, signal
    import ferryml as ferry
    ferry.set_experiment("crash")
    run = ferry.start_run()
    print(run.run_id, flush=True)
    for i in range(1000):
        ferry.log_metric("m", float(i), step=i)
    ferry.log_param("p", "v")
    ferry.set_tag("t", "v")
    ferry.log_metric("last", 42.0)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_values_survive_a_sigkill_right_after_the_call_returned(tmp_path: Path) -> None:
    home = tmp_path / "home"
    child = _python(KILLED_CHILD, home)
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    run_id = out.strip()
    settings = Settings.resolve(home=home, cwd=tmp_path, environ={})

    raw = SqlStore(settings.store_url).open()  # the store alone, before any replay
    assert "last" not in raw.get_run(run_id).data.metrics
    raw.close()

    client = FerryClient(settings)  # opening the journal replays the dead process's file
    run = client.get_run(run_id)
    assert run.data.metrics["last"] == 42.0
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [
        float(i) for i in range(1000)
    ]
    assert dict(run.data.params) == {"p": "v"} and run.data.tags["t"] == "v"
    assert run.info.status is RunStatus.KILLED
    client.close()
    assert list(settings.journal_dir.glob("*.journal")) == []


def test_replaying_a_journal_twice_stores_each_value_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    child = _python(KILLED_CHILD, home)
    out, _ = child.communicate(timeout=60)
    run_id = out.strip()
    settings = Settings.resolve(home=home, cwd=tmp_path, environ={})
    journal = next(settings.journal_dir.glob("*.journal"))
    saved = journal.read_bytes()
    FerryClient(settings).get_run(run_id)
    journal.write_bytes(saved)  # as if a second process had replayed it too
    client = FerryClient(settings)
    assert len(client.get_metric_history(run_id, "m")) == 1000
    client.close()


WRITER = """
    import ferryml as ferry
    ferry.set_experiment("shared")
    for r in range(20):
        with ferry.start_run(run_name=f"w{WORKER}-{r}"):
            ferry.log_params({"worker": WORKER, "r": r})
            for i in range(150):
                ferry.log_metric("loss", float(i), step=i)
            ferry.log_metrics({f"m{i}": float(i) for i in range(50)})
"""


def test_eight_processes_logging_to_one_sqlite_store_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    children = [_python(WRITER.replace("WORKER", str(w)), home) for w in range(8)]
    results = [c.communicate(timeout=240) for c in children]
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err.lower(), err
    settings = Settings.resolve(home=home, cwd=tmp_path, environ={})
    client = FerryClient(settings)
    experiment = client.get_experiment_by_name("shared")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000).runs
    assert len(runs) == 160
    assert all(r.info.status is RunStatus.FINISHED for r in runs)
    assert all(len(r.data.metrics) == 51 and r.data.metrics["loss"] == 149.0 for r in runs)
    sample = runs[0].info.run_id
    assert len(client.get_metric_history(sample, "loss")) == 150
    client.close()


def test_journals_opened_one_after_another_share_one_exit_hook(tmp_path: Path) -> None:
    code = """
        import atexit
        hooks = []
        register = atexit.register
        def counting(f, *args, **kwargs):
            if f.__module__.startswith("ferryml"):
                hooks.append(f)
            return register(f, *args, **kwargs)
        atexit.register = counting
        from ferryml.tracking.client import FerryClient
        for _ in range(30):  # as a server opens a client per request
            opened = FerryClient()
            opened.journal.flush()
            opened.close()
        client = FerryClient()  # left open: the one hook applies its values at exit
        experiment = client.create_experiment("exit")
        run = client.create_run(experiment, capture_environment=False)
        client.log_metric(run.info.run_id, "m", 1.5)
        print(len(hooks), run.info.run_id, flush=True)
    """
    home = tmp_path / "home"
    child = _python(code, home)
    out, err = child.communicate(timeout=120)
    assert (child.returncode, err) == (0, "")
    hooks, run_id = out.split()
    assert hooks == "1"
    settings = Settings.resolve(home=home, cwd=tmp_path, environ={})
    assert list(settings.journal_dir.glob("*.journal")) == []  # applied at exit, not replayed
    raw = SqlStore(settings.store_url).open()
    assert raw.get_run(run_id).data.metrics == {"m": 1.5}
    raw.close()
