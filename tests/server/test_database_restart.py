"""The team server's database crashes and comes back while clients log: the server answers
503 naming the database meanwhile, and nothing ``log_metric`` accepted is lost or doubled."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from team_world import TeamServer, running_server

from private_postgres import PrivateCluster

pytestmark = pytest.mark.e2e

CLIENT = textwrap.dedent(
    """
    import sys
    import ferryml as ferry
    ferry.set_experiment("outage")
    with ferry.start_run(run_name=sys.argv[1]) as run:
        print(run.info.run_id, flush=True)
        sys.stdin.readline()  # logs once the database has gone down
        for step in range(1000):
            ferry.log_metric("x", step, step=step)
        print("logged", flush=True)
    print("done", flush=True)
    """
)


@pytest.fixture(scope="module")
def server(
    private_postgres: PrivateCluster, tmp_path_factory: pytest.TempPathFactory, postgres_ddl: str
) -> Iterator[TeamServer]:
    store_url = private_postgres.create_database(postgres_ddl)
    yield from running_server(store_url, tmp_path_factory.mktemp("team"))


@pytest.fixture(autouse=True)
def database_back(private_postgres: PrivateCluster) -> Iterator[None]:
    """Whatever a test does to the database, the next one finds it running."""
    yield
    if not private_postgres.running():
        private_postgres.start()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Client processes a test starts; killed if the test ends before they do."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_database_crash_and_restart_loses_nothing_log_metric_accepted(
    server: TeamServer,
    private_postgres: PrivateCluster,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    processes += [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, f"client-{i}"],
            cwd=tmp_path,
            env=server.client_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    clients = processes
    run_ids = [c.stdout.readline().strip() for c in clients]  # type: ignore[union-attr]
    assert all(run_ids), [c.stderr.read() for c in clients]  # type: ignore[union-attr]

    private_postgres.stop("immediate")  # a crash: no checkpoint, recovery at the next start
    with server.http("reader") as reader:
        down = reader.get(f"/api/v1/runs/{run_ids[0]}")
    assert down.status_code == 503, down.text
    error = down.json()["error"]
    assert error["type"] == "StoreUnavailable"
    assert f"127.0.0.1:{private_postgres.port}" in error["message"]

    for client in clients:  # they log while the database is down
        client.stdin.write("go\n")  # type: ignore[union-attr]
        client.stdin.flush()  # type: ignore[union-attr]
    for client in clients:
        assert client.stdout.readline().strip() == "logged"  # type: ignore[union-attr]
    private_postgres.start()

    for client in clients:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err
        assert out.strip() == "done"
    with server.http("reader") as reader:
        for run_id in run_ids:
            history = reader.get(f"/api/v1/runs/{run_id}/metrics/x").json()
            assert [m["value"] for m in history] == list(range(1000))
            assert reader.get(f"/api/v1/runs/{run_id}").json()["info"]["status"] == "FINISHED"


def test_the_server_answers_again_by_itself_once_the_database_is_back(
    server: TeamServer, private_postgres: PrivateCluster
) -> None:
    with server.http("writer") as writer:
        created = writer.post("/api/v1/experiments", json={"name": "before"})
        assert created.status_code == 201, created.text
        private_postgres.stop("fast")
        refused = writer.post("/api/v1/experiments", json={"name": "during"})
        assert refused.status_code == 503, refused.text
        private_postgres.start()
        again = writer.post("/api/v1/experiments", json={"name": "after"})
        assert again.status_code == 201, again.text
        names = {e["name"] for e in writer.get("/api/v1/experiments").json()}
    assert {"before", "after"} <= names and "during" not in names
