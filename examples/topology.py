"""The team topology on one machine: every part a process of its own on 127.0.0.1, and the
closed loop of `make demo` run across them while parts are killed.

    PostgreSQL ──┐
    S3 (moto) ───┴── ferry server ──┬── ferry serve (replica a) ──┐
                                    ├── ferry serve (replica b) ──┴── traffic and feedback
                                    ├── ferry agent ── dask scheduler ── 2 dask workers
                                    └── this script (the team's laptop)

1. The metadata go to PostgreSQL and the artifacts to S3, both behind `ferry server`; every
   other part talks to that server with a token.
2. v1 is trained by the churn pipeline on the Dask workers, becomes the champion of
   deployment `churn`, served by two replicas of `ferry serve --deployment churn`.
3. Traffic goes to the replicas in turn, the labels come back to either, and `ferry agent`
   (the policy of examples/closed_loop.py, its retraining on Dask) notices the change,
   retrains, gates, rolls the candidate out and promotes it.
4. Meanwhile one Dask worker is killed while it runs a retraining step, one replica while
   it serves the canary (restarted a little later), and the agent (restarted at once).
5. At the end every answered prediction and every accepted label is counted in the store.

`make topology` runs it on a database of its own in the machine's PostgreSQL
(FERRY_TOPOLOGY_POSTGRES, default postgresql+psycopg://postgres@127.0.0.1:5432/postgres),
printing what happens; Ctrl-C stops every part. tests/test_topology.py runs it too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # closed_loop and churn_pipeline, like `python -m`

import closed_loop  # noqa: E402

from ferryml.config import Settings  # noqa: E402

BIN = Path(sys.executable).parent
S3 = {
    "AWS_ACCESS_KEY_ID": "topology",
    "AWS_SECRET_ACCESS_KEY": "topology",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BUCKET = "ferry-topology"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ferry_command() -> list[str]:
    """The `ferry` script beside this Python, or the same command as `python -m ferryml`."""
    script = BIN / "ferry"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ferryml"]


@dataclass
class Part:
    """One process of the topology, its output in a log file of its own."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Part:
        self.starts += 1
        with open(self.logs / f"{self.name}.log", "ab") as out:
            # A session of its own: Ctrl-C reaches this script, which stops the parts in order.
            self.process = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if not self.alive or self.process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 15) -> str:
        path = self.logs / f"{self.name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_http(self, url: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            with suppress(httpx.TransportError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {url} in {timeout:g} s:\n{self.tail()}")


@dataclass
class Topology:
    """The processes, started by ``start`` and stopped by ``close`` (in reverse order)."""

    folder: Path
    store_url: str
    say: Any = print
    parts: dict[str, Part] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    s3: str = ""
    server: str = ""
    scheduler: str = ""
    replicas: dict[str, str] = field(default_factory=dict)  # name -> URL

    def __post_init__(self) -> None:
        self.logs = self.folder / "logs"
        self.project = self.folder / "project"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.project.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "churn_pipeline.py", self.project)  # the team's pipeline code

    def _part(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Part:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "AWS_"))}
        part = Part(name, args, {**base, **(env or {})}, self.project, self.logs)
        self.parts[name] = part
        return part.start()

    def client_env(self, role: str) -> dict[str, str]:
        return {
            "FERRY_TRACKING_URI": self.server,
            "FERRY_TOKEN": self.tokens[role],
            # the project's modules, for Dask workers and the agent alike
            "PYTHONPATH": os.pathsep.join([str(self.project), os.environ.get("PYTHONPATH", "")]),
        }

    def settings(self, role: str = "ops") -> Settings:
        """This script's settings: a client of the team server."""
        return Settings(
            home=self.folder / "laptop",
            store_url=self.server,
            artifacts_url=self.server,
            token=self.tokens[role],
            root=self.project,
        )

    def start(self) -> Topology:
        started = time.monotonic()
        self.tokens = _add_users(self.store_url)  # creates the schema of an empty database
        moto_port, scheduler_port, server_port = free_port(), free_port(), free_port()
        self.s3, self.server = f"http://127.0.0.1:{moto_port}", f"http://127.0.0.1:{server_port}"
        self.scheduler = f"tcp://127.0.0.1:{scheduler_port}"
        moto = self._part("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)])
        self._part("scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                 "--port", str(scheduler_port), "--no-dashboard"])  # fmt: skip
        for name in ("worker-1", "worker-2"):
            self._part(name, [str(BIN / "dask"), "worker", self.scheduler, "--name", name,
                              "--nthreads", "1", "--no-nanny", "--no-dashboard",
                              "--host", "127.0.0.1", "--memory-limit", "0"],
                       self.client_env("ops"))  # fmt: skip
        moto.wait_http(self.s3)
        _s3_client(self.s3).create_bucket(Bucket=BUCKET)
        server = self._part(
            "server",
            [*ferry_command(), "server", "--port", str(server_port)],
            {"FERRY_HOME": str(self.folder / "server"), "FERRY_STORE": self.store_url,
             "FERRY_ARTIFACTS": f"s3://{BUCKET}/team", "AWS_ENDPOINT_URL": self.s3, **S3},
        )  # fmt: skip
        server.wait_http(f"{self.server}/health")
        self.wait_workers(2)
        self.say(
            f"started in {time.monotonic() - started:.1f} s: PostgreSQL ({_safe(self.store_url)}), "
            f"S3 {self.s3}, ferry server {self.server}, Dask {self.scheduler} with 2 workers"
        )
        return self

    def wait_workers(self, count: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.scheduler, timeout="60s") as client:
            client.wait_for_workers(count, timeout=timeout)

    def start_replica(self, name: str, deployment: str) -> None:
        """Start replica ``name``, or start it again on its port and home after a kill (it
        then stores the predictions the killed process answered)."""
        if name in self.parts:
            self.parts[name].start()
            return
        port = free_port()
        self.replicas[name] = f"http://127.0.0.1:{port}"
        env = {"FERRY_HOME": str(self.folder / name), **self.client_env("serving")}
        self._part(name, [*ferry_command(), "serve", "--deployment", deployment,
                          "--port", str(port)], env)  # fmt: skip

    def wait_replica(self, name: str) -> None:
        self.parts[name].wait_http(f"{self.replicas[name]}/ready")

    def start_agent(self) -> None:
        if "agent" in self.parts:
            self.parts["agent"].start()
            return
        env = {"FERRY_HOME": str(self.folder / "agent"), **self.client_env("ops")}
        self._part("agent", [*ferry_command(), "agent", "--interval", "1", "--lease", "5"], env)

    def close(self) -> None:
        """Stop the server's clients, then what they use: SIGTERM to each part of a wave at
        once, then wait for each (SIGKILL after 30 s)."""
        services = {"server", "scheduler", "s3"}
        for wave in (self.parts.keys() - services, services):
            parts = [p for n, p in self.parts.items() if n in wave and p.alive]
            for part in parts:
                part.signal(signal.SIGTERM)
            for part in parts:
                part.stop()


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _add_users(store_url: str) -> dict[str, str]:
    """ops (maintainer: the agent, the workers, this script), serving (writer: the
    replicas) and labels (writer: who sends feedback), each with a token."""
    from ferryml.store.entities import Role
    from ferryml.store.factory import open_user_store

    store = open_user_store(Settings(home=Path.cwd(), store_url=store_url, artifacts_url=""))
    try:
        tokens = {}
        for name, role in (("ops", Role.MAINTAINER), ("serving", Role.WRITER),
                           ("labels", Role.WRITER)):  # fmt: skip
            store.create_user(name, role)
            tokens[name] = store.create_token(name, "topology")[1]
        return tokens
    finally:
        store.close()


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3["AWS_SECRET_ACCESS_KEY"],
    )


# -- the loop across the processes ------------------------------------------------------------


@dataclass
class Ledger:
    """What the traffic sent and what came back: the ids answered (and by which replica),
    the labels accepted, and those a server did not know yet (sent again later)."""

    sent: int = 0
    requests: int = 0
    answered: dict[str, str] = field(default_factory=dict)  # prediction id -> replica
    versions: dict[str, dict[int, int]] = field(default_factory=dict)  # replica -> counts
    labels: dict[str, int] = field(default_factory=dict)  # accepted
    pending: dict[str, int] = field(default_factory=dict)  # not accepted yet
    failed_over: int = 0  # requests a dead replica could not answer, sent to the other


class Traffic:
    """Customers sent to the replicas in turn; their labels sent back to either."""

    def __init__(self, topology: Topology, deployment: str) -> None:
        self.top, self.deployment, self.ledger = topology, deployment, Ledger()
        self.clients = {
            n: httpx.Client(base_url=u, timeout=30) for n, u in topology.replicas.items()
        }
        self.auth = {"Authorization": f"Bearer {topology.tokens['labels']}"}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def _order(self, first: int) -> list[str]:
        names = list(self.clients)
        return names[first % len(names) :] + names[: first % len(names)]

    def send(self, frame: Any, per_request: int = 1) -> None:
        """The customers, ``per_request`` to a request, each request to the next replica
        (to the other one if that one does not answer)."""
        ledger = self.ledger
        rows = frame[closed_loop.FEATURES].to_dict("records")
        labels = [int(v) for v in frame["churned"]]
        for at in range(0, len(rows), per_request):
            records = rows[at : at + per_request]
            for attempt, name in enumerate(self._order(ledger.requests)):
                try:
                    answer = self.clients[name].post(
                        f"/v1/models/{self.deployment}/predict", json={"records": records}
                    )
                except httpx.TransportError:
                    ledger.failed_over += attempt == 0
                    continue
                answer.raise_for_status()
                body = answer.json()
                counts = ledger.versions.setdefault(name, {})
                counts[body["version"]] = counts.get(body["version"], 0) + len(records)
                for pid, label in zip(body["ids"], labels[at : at + per_request], strict=True):
                    ledger.answered[pid] = name
                    ledger.pending[pid] = label
                break
            else:
                raise RuntimeError("no replica answered")
            ledger.requests += 1
            ledger.sent += len(records)

    def feedback(self, via: int, wait: float = 5.0) -> None:
        """Send the labels not accepted yet to a live replica, again while the replicas that
        answered them flush their logs (every second)."""
        deadline = time.monotonic() + wait
        while self.ledger.pending:
            alive = [n for n in self._order(via) if self.top.parts[n].alive]
            body = [{"prediction_id": p, "label": v} for p, v in self.ledger.pending.items()]
            try:
                report = self.clients[alive[0]].post("/v1/feedback", json=body, headers=self.auth)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            report.raise_for_status()
            unknown = set(report.json()["unknown_ids"])
            for pid in list(self.ledger.pending):
                if pid not in unknown:
                    self.ledger.labels[pid] = self.ledger.pending.pop(pid)
            # labels of predictions a dead replica answered wait for its restart
            waiting = [p for p in unknown if self.top.parts[self.ledger.answered[p]].alive]
            if not waiting or time.monotonic() > deadline:
                return
            time.sleep(0.3)


class WorkerKiller(threading.Thread):
    """Watches the Dask scheduler and SIGKILLs the first worker seen running a task."""

    def __init__(self, topology: Topology) -> None:
        super().__init__(daemon=True)
        self.top = topology
        self.killed: tuple[str, str] | None = None  # worker, task
        self.stop = threading.Event()

    def run(self) -> None:
        from distributed import Client

        with Client(self.top.scheduler, timeout="30s") as client:
            while not self.stop.is_set():
                for address, keys in client.processing().items():
                    if keys:
                        name = client.scheduler_info()["workers"][address]["name"]
                        self.top.parts[name].kill()
                        self.killed = (name, str(keys[0]))
                        return
                time.sleep(0.02)


@dataclass
class Faults:
    """What was killed, when (in predictions sent), and what came back."""

    worker: tuple[str, str] | None = None
    agent_killed_at: int | None = None
    replica_killed_at: int | None = None
    replica_restarted_at: int | None = None
    log: list[str] = field(default_factory=list)


def setup(top: Topology, names: closed_loop.Names) -> int:
    """Version the first data, train v1 on the Dask workers, make it the champion of a
    deployment watched by the monitor, and write the policy to the project's ferry.yaml."""
    import json

    from ferryml.data.workspace import Workspace
    from ferryml.monitoring import add_monitor
    from ferryml.pipelines import run_target
    from ferryml.registry.models import Registry
    from ferryml.serving.deployments import Deployments

    settings = top.settings()
    workspace = Workspace(settings)
    try:
        first = workspace.add_frame(
            closed_loop.customers(3000, 1, changed=False), "churn-customers"
        )
    finally:
        workspace.close()
    params = {"data": first.ref, "c": 1.0, "model_name": names.model}
    result = run_target("churn_pipeline:training", params, settings=settings, executor="dask",
                        address=top.scheduler)  # fmt: skip
    v1 = int(result.output())
    registry = Registry(settings)
    try:
        registry.set_alias(names.model, "champion", v1, reason="first model")
    finally:
        registry.close()
    manager = Deployments(settings)
    try:
        manager.create(names.deployment, names.model, v1, reason="topology: the first champion")
    finally:
        manager.close()
    add_monitor(settings, closed_loop.monitor_spec(names, v1, []))
    # The project's cluster, where the policy's retraining runs; JSON is YAML.
    config = {
        "dask": {"address": top.scheduler},
        "policies": {names.policy: closed_loop.policy_body(names, executor="dask")},
    }
    (top.project / "ferry.yaml").write_text(json.dumps(config))
    return v1


def run_loop(
    top: Topology,
    say: Any = print,
    *,
    before: int = 600,
    after_promotion: int = 300,
    batch: int = 50,
    per_request: int = 1,
    timeout: float = 600,
) -> dict[str, Any]:
    """The closed loop across the topology, with its faults; what happened, counted."""
    from ferryml.automation import decision_story, list_decisions

    names = closed_loop.Names("churn")
    started = time.monotonic()
    v1 = setup(top, names)
    say(f"v1 trained on Dask: {names.model}/{v1}, champion of deployment {names.deployment}")
    for name in ("replica-a", "replica-b"):
        top.start_replica(name, names.deployment)
    top.start_agent()
    for name in ("replica-a", "replica-b"):
        top.wait_replica(name)
    say(f"2 replicas of {names.deployment} ({', '.join(top.replicas.values())}) and the agent "
        f"up, {time.monotonic() - started:.1f} s after setup began")  # fmt: skip

    settings = top.settings()
    traffic, faults, killer = Traffic(top, names.deployment), Faults(), WorkerKiller(top)
    ledger = traffic.ledger
    decision: int | None = None
    story: dict[str, Any] = {}
    promoted_at: int | None = None
    changed_at: int | None = None
    candidate: int | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            changed = ledger.sent >= before
            if changed and changed_at is None:
                changed_at = ledger.sent
                say(f"{ledger.sent} predictions: the world changes (price now drives churn)")
            traffic.send(closed_loop.customers(batch, 100 + ledger.sent, changed), per_request)
            traffic.feedback(via=ledger.sent // batch)
            if decision is None:
                found = list_decisions(settings, policy=names.policy, limit=1)
                if found:
                    decision = found[0].id
                    killer.start()  # the retraining's steps are next
                    say(f"{ledger.sent} predictions: decision {decision} started")
                continue
            story = decision_story(settings, decision)
            kinds = [e["kind"] for e in story["events"]]
            if killer.killed and faults.worker is None:
                faults.worker = killer.killed
                say(f"killed Dask {killer.killed[0]} while it ran {killer.killed[1]}")
            link = story["links"].get("candidate", {}).get("version")
            candidate = int(link.rsplit("/", 1)[1]) if link else candidate
            if "rollout" in kinds and faults.agent_killed_at is None:
                top.parts["agent"].kill()
                top.start_agent()
                faults.agent_killed_at = ledger.sent
                say(f"{ledger.sent} predictions: canary at 30%; killed the agent and started "
                    "another (it takes over when the lease lapses)")  # fmt: skip
            served_canary = all(
                ledger.versions.get(r, {}).get(candidate or -1) for r in top.replicas
            )
            if served_canary and faults.replica_killed_at is None:
                top.parts["replica-a"].kill()
                faults.replica_killed_at = ledger.sent
                say(f"{ledger.sent} predictions: both replicas serve canary {candidate}; killed "
                    "replica-a (replica-b takes the traffic)")  # fmt: skip
            if (faults.replica_killed_at is not None and faults.replica_restarted_at is None
                    and ledger.sent >= faults.replica_killed_at + 2 * batch):  # fmt: skip
                top.start_replica("replica-a", names.deployment)
                top.wait_replica("replica-a")
                faults.replica_restarted_at = ledger.sent
                say(f"{ledger.sent} predictions: replica-a started again")
            if story["outcome"] == "promoted" and promoted_at is None:
                promoted_at = ledger.sent
                say(f"{ledger.sent} predictions: {names.model}/{candidate} promoted")
            elif story["outcome"] not in (None, "promoted"):
                say(f"decision {decision} ended: {story['outcome']}")
                break
            if (promoted_at is not None and faults.replica_restarted_at is not None
                    and ledger.sent >= promoted_at + after_promotion):  # fmt: skip
                break
        traffic.feedback(via=0, wait=60)  # the last labels, once the last flush is in
    finally:
        killer.stop.set()
        traffic.close()
    for name in top.replicas:  # a clean stop flushes each replica's log
        top.parts[name].stop()
    return _tally(top, names, decision, story, ledger, faults, candidate, changed_at, promoted_at)


def _tally(
    top: Topology,
    names: closed_loop.Names,
    decision: int | None,
    story: dict[str, Any],
    ledger: Ledger,
    faults: Faults,
    candidate: int | None,
    changed_at: int | None,
    promoted_at: int | None,
) -> dict[str, Any]:
    """The store's side: every prediction and label, the decision, the model in S3."""
    from ferryml.predictions import load as load_predictions
    from ferryml.registry.models import Registry

    settings = top.settings()
    log = load_predictions(names.deployment, with_feedback=True, settings=settings)
    stored = log["id"].tolist()
    labelled = log.dropna(subset=["label"])
    in_s3 = None
    if candidate is not None:
        registry = Registry(settings)
        try:
            digest = registry.version(f"{names.model}/{candidate}").package_digest
        finally:
            registry.close()
        key = f"team/blobs/{digest[:2]}/{digest[2:]}"
        in_s3 = _s3_client(top.s3).head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    from distributed import Client

    with Client(top.scheduler, timeout="30s") as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        workers = {client.scheduler_info()["workers"][a]["name"]: n for a, n in executed.items()}
    return {
        "decision": decision,
        "outcome": story.get("outcome"),
        "events": [e["kind"] for e in story.get("events", [])],
        "story": [e["message"] for e in story.get("events", [])],
        "candidate": candidate,
        "candidate_package_bytes_in_s3": in_s3,
        "changed_at": changed_at,
        "promoted_at": promoted_at,
        "sent": ledger.sent,
        "answered": len(ledger.answered),
        "failed_over": ledger.failed_over,
        "stored": len(stored),
        "stored_distinct": len(set(stored)),
        "missing": sorted(set(ledger.answered) - set(stored)),
        "labels_accepted": len(ledger.labels),
        "labels_pending": len(ledger.pending),
        "labels_stored": int(labelled["id"].isin(list(ledger.labels)).sum()),
        "versions_by_replica": ledger.versions,
        "worker_killed": faults.worker,
        "agent_killed_at": faults.agent_killed_at,
        "agent_starts": top.parts["agent"].starts,
        "replica_killed_at": faults.replica_killed_at,
        "replica_restarted_at": faults.replica_restarted_at,
        "tasks_by_live_worker": workers,
    }


# -- make topology ------------------------------------------------------------------------------


@contextmanager
def private_database(admin_url: str) -> Iterator[str]:
    """A new database in the PostgreSQL at ``admin_url``, dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"ferry_topology_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    import tempfile

    from rich.table import Table

    console = Console()
    admin = os.environ.get(
        "FERRY_TOPOLOGY_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ferry-topology-")))
        store = stack.enter_context(private_database(admin))
        top = Topology(folder, store, say=console.log)
        stack.callback(top.close)
        console.rule("[bold]The team topology[/bold]: every part a process on 127.0.0.1")
        try:
            top.start()
            result = run_loop(top, console.log)
        except KeyboardInterrupt:
            console.log("stopping every part")
            return
        table = Table(title="What was sent, what was stored", title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        rows = [
            ("predictions answered / stored (distinct)",
             f"{result['answered']} / {result['stored']} ({result['stored_distinct']})"),
            ("requests a dead replica missed, answered by the other", str(result["failed_over"])),
            ("labels accepted / stored",
             f"{result['labels_accepted']} / {result['labels_stored']}"),
            ("versions answered, by replica", str(result["versions_by_replica"])),
            ("Dask worker killed (while running)", str(result["worker_killed"])),
            ("tasks run by the live worker", str(result["tasks_by_live_worker"])),
            ("candidate's package in S3 (bytes)", str(result["candidate_package_bytes_in_s3"])),
            ("decision's steps", ", ".join(result["events"])),
            ("outcome", str(result["outcome"])),
        ]  # fmt: skip
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for message in result["story"]:
            console.print(f"  {message}")
        console.log(f"logs of every part were in {top.logs}; stopping every part")


if __name__ == "__main__":
    main()
