"""The Python API and the ``ferry`` commands work through a team server, unchanged, and
logging through it keeps the local guarantees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import blake3
import pytest
from team_world import FERRY, TeamServer

pytestmark = pytest.mark.e2e


def _python(server: TeamServer, cwd: Path, code: str, role: str = "writer") -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=server.client_env(role),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _ferry(
    server: TeamServer, cwd: Path, *args: str, role: str = "writer"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FERRY, *args],
        cwd=cwd,
        env=server.client_env(role),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_runs_logged_through_the_server_are_found_there_with_who_logged_them(
    team_server: TeamServer, client_dir: Path
) -> None:
    out = _python(
        team_server,
        client_dir,
        """
        import ferryml as ferry
        ferry.set_experiment("remote")
        with ferry.start_run(run_name="first") as run:
            ferry.log_params({"alpha": 0.5, "model": "rf"})
            for step in range(500):
                ferry.log_metric("loss", 1 / (step + 1), step=step)
            ferry.log_metric("auc", float("nan"))
            ferry.set_tag("team", "fraud")
            open("notes.txt", "w").write("hello from a client")
            ferry.log_artifact("notes.txt")
        print(run.info.run_id)
        """,
    )
    run_id = out.strip()
    assert not (client_dir / ".ferry" / "ferry.db").exists()  # nothing stored locally
    with team_server.http("reader") as reader:
        run = reader.get(f"/api/v1/runs/{run_id}").json()
        history = reader.get(f"/api/v1/runs/{run_id}/metrics/loss").json()
        found = reader.post(
            "/api/v1/runs/search",
            json={
                "experiment_ids": [run["info"]["experiment_id"]],
                "filter": "params.model = 'rf'",
            },
        ).json()
    assert run["info"]["user"] == "writer"  # the token's user, not the client's OS user
    assert run["info"]["status"] == "FINISHED"
    assert run["data"]["params"] == {"alpha": "0.5", "model": "rf"}
    assert run["data"]["tags"]["team"] == "fraud"
    assert len(history) == 500 and history[-1]["value"] == pytest.approx(1 / 500)
    assert [r["info"]["run_id"] for r in found["runs"]] == [run_id]
    listed = _ferry(team_server, client_dir, "runs", "list", "--experiment", "remote", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["info"]["run_id"] for r in json.loads(listed.stdout)["runs"]] == [run_id]
    back = _python(
        team_server,
        client_dir,
        f"""
        import ferryml as ferry
        c = ferry.FerryClient()
        print(c.get_run("{run_id}").data.metrics["auc"])
        c.download_artifacts("{run_id}", "notes.txt", "out")
        print(open("out/notes.txt").read())
        """,
        role="reader",
    )
    assert back.split("\n")[:2] == ["nan", "hello from a client"]


def test_a_reader_cannot_log(team_server: TeamServer, client_dir: Path) -> None:
    result = _ferry(team_server, client_dir, "experiments", "create", "nope", role="reader")
    assert result.returncode == 1
    assert "has the role reader; this needs writer" in result.stderr
    no_token = team_server.client_env("reader")
    no_token.pop("FERRY_TOKEN")
    result = subprocess.run(
        [FERRY, "runs", "list"], cwd=client_dir, env=no_token, capture_output=True, text=True
    )
    assert result.returncode == 1 and "No token" in result.stderr


def test_models_logged_through_the_server_load_and_promote_with_who(
    team_server: TeamServer, client_dir: Path
) -> None:
    _python(
        team_server,
        client_dir,
        """
        import ferryml as ferry
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        X, y = load_iris(return_X_y=True, as_frame=True)
        from sklearn.dummy import DummyClassifier
        with ferry.start_run():
            ferry.log_model(LogisticRegression(max_iter=500).fit(X, y), name="model",
                            registered_model_name="iris", input_example=X.head(3))
            ferry.log_model(DummyClassifier().fit(X, y), name="worse",
                            registered_model_name="iris", input_example=X.head(3))
        """,
    )
    refused = _ferry(team_server, client_dir, "models", "alias", "iris", "champion", "1")
    assert refused.returncode == 1 and "needs maintainer" in refused.stderr
    moved = _ferry(
        team_server, client_dir, "models", "alias", "iris", "champion", "1", role="maintainer"
    )
    assert moved.returncode == 0, moved.stderr
    out = _python(
        team_server,
        client_dir,
        """
        import ferryml as ferry
        from sklearn.datasets import load_iris
        X, _ = load_iris(return_X_y=True, as_frame=True)
        print([int(v) for v in ferry.load_model("models:/iris@champion").predict(X.head(3))])
        """,
        role="reader",
    )
    assert out.strip() == "[0, 0, 0]"
    with team_server.http("reader") as reader:
        events = reader.get("/api/v1/models/iris/events").json()
    assert [(e["action"], e["user"]) for e in events][-1] == ("set_alias", "maintainer")
    promote = """
        import json
        import ferryml as ferry
        from sklearn.datasets import load_iris
        data = load_iris(as_frame=True).frame
        try:
            print(json.dumps(ferry.promote("iris", 2, data=data, target="target").to_dict()))
        except ferry.FerryError as e:
            print(type(e).__name__, e)
        """
    out = _python(team_server, client_dir, promote)
    assert out.startswith("PermissionDenied") and "this needs maintainer" in out
    decision = json.loads(_python(team_server, client_dir, promote, role="maintainer"))
    assert (decision["passed"], decision["moved"], decision["champion"]) == (False, False, 1)
    failed = [c for c in decision["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["roc_auc"]
    assert failed[0]["detail"].startswith("candidate 0.5 vs champion 0.99")
    with team_server.http("reader") as reader:
        events = reader.get("/api/v1/models/iris/events").json()
        assert reader.get("/api/v1/models/iris/aliases/champion").json()["version"] == 1
    refusal = events[-1]
    assert (refusal["action"], refusal["user"], refusal["version"]) == (
        "promotion_refused",
        "maintainer",
        2,
    )
    assert refusal["from_version"] == refusal["to_version"] == 1
    assert refusal["evidence"]["checks"] == decision["checks"]  # judged where it is recorded
    # A looser gate sent by the client changes nothing: the server judges with its own.
    loose = promote.replace('target="target"', 'target="target", gate={"min_delta": -1.0}')
    decision = json.loads(_python(team_server, client_dir, loose, role="maintainer"))
    assert (decision["passed"], decision["moved"], decision["champion"]) == (False, False, 1)


def test_the_server_judges_a_promotion_on_the_rows_sent_and_refuses_bad_ones(
    team_server: TeamServer, client_dir: Path
) -> None:
    _python(
        team_server,
        client_dir,
        """
        import ferryml as ferry
        from sklearn.datasets import load_iris
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression
        X, y = load_iris(return_X_y=True, as_frame=True)
        with ferry.start_run():
            ferry.log_model(LogisticRegression(max_iter=500).fit(X, y), name="good",
                            registered_model_name="iris", input_example=X.head(3))
            ferry.log_model(DummyClassifier().fit(X, y), name="worse",
                            registered_model_name="iris", input_example=X.head(3))
        """,
    )
    with team_server.http("maintainer") as http:
        assert http.put("/api/v1/models/iris/aliases/champion", json={"version": 1}).is_success
        sent = {"candidate": 2, "rows": "0" * 64, "target": "target"}
        r = http.post("/api/v1/models/iris/promotions", json=sent)
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
    not_parquet = b"not, a, parquet file"
    with team_server.http("writer") as http:
        digest = blake3.blake3(not_parquet).hexdigest()
        r = http.put(
            f"/api/v1/blobs/{digest}",
            content=not_parquet,
            headers={"Upload-Length": str(len(not_parquet))},
        )
        assert r.status_code == 201
        sent = {"candidate": 2, "rows": digest, "target": "target"}
        r = http.post("/api/v1/models/iris/promotions", json=sent)
        assert r.status_code == 403 and "needs maintainer" in r.json()["error"]["message"]
    with team_server.http("maintainer") as http:
        r = http.post("/api/v1/models/iris/promotions", json=sent)
        assert r.status_code == 422
        assert r.json()["error"]["message"].startswith("The evaluation rows are not a Parquet")
        # Calling a move a promotion, without a gate that passed it, is refused.
        for evidence in (None, {"decision": 999, "gate": {"passed": True}}):
            claim = {"version": 2, "action": "promote", "evidence": evidence}
            r = http.put("/api/v1/models/iris/aliases/champion", json=claim)
            assert r.status_code == 422 and "needs its gate to pass" in r.json()["error"]["message"]
        assert http.get("/api/v1/models/iris/aliases/champion").json()["version"] == 1


def test_a_model_may_name_its_own_maintainers(team_server: TeamServer, client_dir: Path) -> None:
    _python(
        team_server,
        client_dir,
        """
        import ferryml as ferry
        from sklearn.dummy import DummyClassifier
        with ferry.start_run():
            ferry.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="m",
                            registered_model_name="owned")
        """,
    )
    named = _ferry(team_server, client_dir, "server", "maintainer", "add", "owned", "owner")
    assert named.returncode == 1 and "needs admin" in named.stderr
    named = _ferry(
        team_server, client_dir, "server", "maintainer", "add", "owned", "owner", role="admin"
    )
    assert named.returncode == 0 and named.stdout.strip() == "owner now maintains model owned."
    with team_server.http("owner") as owner:
        assert (
            owner.put("/api/v1/models/owned/aliases/champion", json={"version": 1}).status_code
            == 200
        )
        r = owner.put("/api/v1/models/iris/aliases/champion", json={"version": 1})
        assert r.status_code == 403 and "not a maintainer of model 'iris'" in r.text


def test_a_client_killed_after_logging_loses_nothing(
    team_server: TeamServer, client_dir: Path
) -> None:
    """SIGKILL right after ``log_metric`` returned: the next client replays the journal."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        import ferryml as ferry
        ferry.set_experiment("killed")
        run = ferry.start_run()
        for step in range(2000):
            ferry.log_metric("x", step, step=step)
        print(run.info.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=client_dir,
        env=team_server.client_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL
    run_id = result.stdout.strip()
    # The next client to open the store replays what the killed one journaled.
    _python(team_server, client_dir, "import ferryml as ferry; ferry.FerryClient().store.close()")
    with team_server.http("reader") as reader:
        history = reader.get(f"/api/v1/runs/{run_id}/metrics/x").json()
        status = reader.get(f"/api/v1/runs/{run_id}").json()["info"]["status"]
    assert [m["value"] for m in history] == list(range(2000))
    assert status == "KILLED"


def test_a_server_restart_mid_stream_loses_nothing(
    team_server: TeamServer, client_dir: Path
) -> None:
    """The server is SIGKILLed and restarted while a client logs; the client's journal holds
    the values and sends them when the server is back, each once."""
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                import ferryml as ferry
                ferry.set_experiment("restart")
                with ferry.start_run() as run:
                    print(run.info.run_id, flush=True)
                    for step in range(3000):
                        ferry.log_metric("x", step, step=step)
                        if step % 100 == 0:
                            time.sleep(0.05)
                print("done", flush=True)
                """
            ),
        ],
        cwd=client_dir,
        env=team_server.client_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    run_id = client.stdout.readline().strip()
    team_server.stop(signal.SIGKILL)
    team_server.start()
    assert client.stdout.readline().strip() == "done"
    assert client.wait(120) == 0
    client.stdout.close()
    with team_server.http("reader") as reader:
        history = reader.get(f"/api/v1/runs/{run_id}/metrics/x").json()
    assert [m["value"] for m in history] == list(range(3000))


def test_many_clients_at_once_lose_nothing(team_server: TeamServer, client_dir: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import ferryml as ferry
        ferry.set_experiment("crowd")
        with ferry.start_run(run_name=f"client-{sys.argv[1]}"):
            for step in range(300):
                ferry.log_metric("x", step, step=step)
            ferry.log_param("client", sys.argv[1])
        """
    )
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(i)],
            cwd=client_dir,
            env=team_server.client_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(20)
    ]
    errors = [c.communicate(timeout=300)[1] for c in clients]  # reads stderr, then waits
    assert [c.returncode for c in clients] == [0] * 20, [e for e in errors if e.strip()]
    with team_server.http("reader") as reader:
        experiment = reader.get("/api/v1/experiments", params={"name": "crowd"}).json()[0]
        runs = reader.post(
            "/api/v1/runs/search", json={"experiment_ids": [experiment["experiment_id"]]}
        ).json()["runs"]
        assert len(runs) == 20
        for run in runs:
            history = reader.get(f"/api/v1/runs/{run['info']['run_id']}/metrics/x").json()
            assert [m["value"] for m in history] == list(range(300))


def test_an_unreachable_server_is_named(client_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(FERRY_TRACKING_URI="http://127.0.0.1:9", FERRY_TOKEN="x", FERRY_SERVER_RETRY="1s")
    result = subprocess.run(
        [FERRY, "runs", "list"],
        cwd=client_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: Cannot reach the ferryml server at http://127.0.0.1:9")
