"""The closed loop on one machine: a churn model meets a world that changes, and ferryml
notices, retrains, gates, rolls out and promotes a better model by itself.

1. A stream of customers: tenure, charges, support calls, age, contract; who churned. At
   a known point a competitor's cheaper offer changes *why* customers leave: price starts
   to matter more than anything else. The features look the same; only their relation to
   the label changes (concept drift), which no drift test on the inputs can see.
2. The first data is versioned, the training pipeline registers v1, v1 becomes the
   champion and a server (`ferry serve --deployment`) answers requests with it.
3. Traffic arrives with its true labels a little later (feedback). A monitor checks each
   window of 100 predictions; its alert goes to a webhook receiver this script runs.
4. The agent, with a retraining policy, acts on the alert: it waits for enough fresh
   labels, versions them, runs the pipeline, gates v2 against v1 on held-out fresh rows,
   rolls v2 out as a canary in two steps while watching its accuracy, and promotes it.
5. A timeline and the figures: detection delay, false alerts, accuracy before the change,
   after it with the old model, and after the promotion.

Run by `make demo` after the tour of the parts (examples/demo.py), or on its own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import ferryml as ferry
import ferryml.data
from ferryml.automation import Agent, Policy, decision_story
from ferryml.errors import NotFound
from ferryml.monitoring import MonitorSpec, add_monitor
from ferryml.monitoring.alerts import list_alerts
from ferryml.pipelines import run_target
from ferryml.predictions import load as load_predictions
from ferryml.serving.deployments import Deployments, RollbackPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # churn_pipeline, like `python -m`

BATCH = 100  # requests between two passes of the agent
BEFORE = 600  # predictions before the world changes
MAX_AFTER = 3000  # the most predictions sent after it, whatever happens
AFTER_PROMOTION = 300
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "contract"]


def customers(n: int, seed: int, changed: bool) -> pd.DataFrame:
    """Customers and whether each churned. Before the change, short tenure, support calls
    and month-to-month contracts drive churn; after it, the monthly charge does."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 73, n),
            "monthly_charges": np.clip(rng.normal(70, 20, n), 18, 120).round(2),
            "support_calls": rng.poisson(1.5, n),
            "age": np.clip(rng.normal(45, 13, n), 18, 90).round(),
            "contract": rng.choice(["month", "year", "two-year"], n, p=[0.55, 0.25, 0.2]),
        }
    )
    tenure = (frame["tenure_months"] - 36) / 20
    charges = (frame["monthly_charges"] - 70) / 20
    calls = frame["support_calls"] - 1.5
    contract = frame["contract"].map({"month": 1.0, "year": -0.5, "two-year": -1.5})
    if changed:
        logit = 3.0 * charges - 0.3 * tenure + 0.1 * calls
    else:
        logit = 0.4 + 1.2 * calls - 1.8 * tenure + 1.5 * contract
    churned = rng.random(n) < 1 / (1 + np.exp(-2 * logit))
    return frame.assign(churned=churned.astype(int))


@dataclass
class Names:
    """This run's names: a second `make demo` on the same store starts a fresh loop."""

    deployment: str
    model: str = "churn"
    monitor: str = ""
    policy: str = ""

    def __post_init__(self) -> None:
        self.monitor = f"{self.deployment}-watch"
        self.policy = f"retrain-{self.deployment}"


@dataclass
class Traffic:
    """How many predictions were sent, and the moment the world changed."""

    sent: int = 0
    changed_at: float | None = None


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main(console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    settings = ferry.Settings.resolve()
    names = _names(settings)
    console.rule(f"[bold]The closed loop[/bold] (deployment {names.deployment})")
    started = time.time()

    # 1-2. The first data, v1 through the training pipeline, the champion, a deployment.
    first = ferryml.data.add(customers(3000, 1, changed=False), name="churn-customers")
    params = {"data": first.ref, "c": 1.0, "model_name": names.model}
    result = run_target("churn_pipeline:training", params, settings=settings)
    v1 = int(result.output())
    ferry.set_registered_model_alias(names.model, "champion", v1, reason="first model")
    manager = Deployments(settings)
    # The policy judges the canary on accuracy; the model server's own guard rolls it back
    # on latency only when it is several times slower, as the tour shares its machine with
    # whatever else runs there.
    manager.create(
        names.deployment,
        names.model,
        v1,
        reason="demo: the first champion",
        policy=RollbackPolicy(latency_margin=3.0),
    )
    manager.close()
    console.print(
        f"[bold]data[/bold] {first.ref} ({first.rows} rows) -> [bold]pipeline[/bold] run "
        f"{result.run_id} -> {names.model}/{v1}, champion of deployment {names.deployment}"
    )

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    add_monitor(settings, monitor_spec(names, v1, [{"webhook": hook}]))
    policy = Policy.from_dict(names.policy, policy_body(names))
    console.print(
        f"[bold]monitor[/bold] {names.monitor}: windows of {BATCH}, alert when accuracy < 0.72 "
        f"-> webhook {hook}; [bold]policy[/bold] {names.policy}: on that alert, retrain on "
        "the fresh labels, gate, canary 30% then 60%, promote"
    )

    # 3-4. Traffic with feedback; the agent makes a pass after every batch.
    port = _free_port()
    server = _serve(names.deployment, port)
    traffic = Traffic()
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
            Agent(settings, {policy.name: policy}, schedules=False) as agent,
        ):
            _wait_ready(client, server)
            agent.tick()  # the first pass only sets the policy's watermarks
            decision, promoted_at = None, None
            while True:
                changed = traffic.sent >= BEFORE
                if changed and traffic.changed_at is None:
                    traffic.changed_at = time.time()
                    console.print(
                        f"[yellow]{traffic.sent} predictions: the world changes[/yellow] (price "
                        "now drives churn)"
                    )
                batch_sent = dt.datetime.now(dt.UTC)
                _send(client, names, traffic, customers(BATCH, 100 + traffic.sent, changed))
                _wait_logged(settings, names.deployment, batch_sent, BATCH)
                tick = agent.tick()
                for created in tick.created:
                    decision = created
                    console.print(
                        f"[bold]{traffic.sent} predictions: decision {created}[/bold] "
                        f"started: {decision_story(settings, created)['events'][0]['message']}"
                    )
                if decision is not None and promoted_at is None:
                    outcome = decision_story(settings, decision)["outcome"]
                    if outcome == "promoted":
                        promoted_at = traffic.sent
                        console.print(f"[green]{traffic.sent} predictions: v2 promoted[/green]")
                    elif outcome is not None:
                        console.print(f"[red]decision {decision} ended: {outcome}[/red]")
                        break
                if promoted_at is not None and traffic.sent >= promoted_at + AFTER_PROMOTION:
                    break
                if traffic.sent >= BEFORE + MAX_AFTER:
                    console.print("[red]no promotion within the demo's traffic[/red]")
                    break
    finally:
        server.terminate()
        server.wait(timeout=30)
        receiver.shutdown()

    # 5. The timeline and the figures.
    figures = _figures(settings, names, traffic, decision)
    _print_timeline(console, settings, decision, started, traffic)
    _print_figures(console, figures, len(_Receiver.received))
    reports = settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    from ferryml.monitoring.monitors import report_html

    page = reports / f"{names.monitor}.html"
    page.write_text(report_html(settings, names.monitor), encoding="utf-8")
    figures["webhook_messages"] = len(_Receiver.received)
    (reports / f"{names.deployment}-loop.json").write_text(json.dumps(figures, indent=2))
    console.print(
        f"Store: {settings.store_url}\nMonitor report: {page}\nFigures: "
        f"{reports / (names.deployment + '-loop.json')}\n"
        f"Try: ferry decisions show {decision} ; ferry monitor report {names.monitor} ; "
        f"ferry deploy history {names.deployment} ; ferry alerts list --monitor {names.monitor}"
    )
    return figures


def monitor_spec(names: Names, version: int, channels: list[Any]) -> MonitorSpec:
    """The monitor: windows of ``BATCH`` predictions against ``version``'s training data,
    alerting when accuracy falls below 0.72."""
    return MonitorSpec(
        names.monitor,
        names.deployment,
        f"model:{names.model}/{version}",
        window=BATCH,
        task="classification",
        checks="drift,performance,concept",
        rules=["accuracy < 0.72"],
        channels=channels,
    )


def policy_body(names: Names, **retrain: Any) -> dict[str, Any]:
    """The retraining policy's ``ferry.yaml`` mapping; ``retrain`` adds to its retrain part
    (where the pipeline runs, for one)."""
    return {
        "deployment": names.deployment,
        "target": "churned",
        "triggers": [{"alert": names.monitor}],
        "retrain": {
            "pipeline": "churn_pipeline:training",
            "params": {"model_name": names.model},
            "feedback_since": "trigger",
            "min_rows": 400,
            "holdout": 0.3,
            **retrain,
        },
        "gate": {"metric": "accuracy", "min_delta": 0.02},
        "rollout": {
            "steps": [{"weight": 30, "requests": 60}, {"weight": 60, "requests": 60}],
            "max_drop": 0.05,
            "min_labelled": 30,
        },
        "cooldown": "1h",
    }


def _names(settings: ferry.Settings) -> Names:
    manager = Deployments(settings)
    try:
        taken = {name for name, _ in manager.store.list_deployments()}
    finally:
        manager.close()
    name, k = "churn", 1
    while name in taken:
        k += 1
        name = f"churn-{k}"
    return Names(name, model=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(deployment: str, port: int) -> subprocess.Popen[bytes]:
    ferry_cli = shutil.which("ferry", path=str(Path(sys.executable).parent)) or "ferry"
    return subprocess.Popen(
        [ferry_cli, "serve", "--deployment", deployment, "--port", str(port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_ready(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(
                f"ferry serve stopped: {server.stderr.read().decode() if server.stderr else ''}"
            )
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("ferry serve did not become ready in 60 s")


def _send(client: httpx.Client, names: Names, traffic: Traffic, batch: pd.DataFrame) -> None:
    """One request per customer, then their true labels as feedback."""
    labels = []
    for row, churned in zip(batch[FEATURES].to_dict("records"), batch["churned"], strict=True):
        answer = client.post(f"/v1/models/{names.deployment}/predict", json={"records": [row]})
        answer.raise_for_status()
        labels.append({"prediction_id": answer.json()["ids"][0], "label": int(churned)})
    client.post("/v1/feedback", json=labels).raise_for_status()
    traffic.sent += len(batch)


def _wait_logged(settings: ferry.Settings, deployment: str, since: dt.datetime, count: int) -> None:
    """The server writes its prediction log every second; wait until it holds the ``count``
    predictions made since ``since``."""
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            logged = load_predictions(
                deployment, since=since, with_feedback=False, settings=settings
            )
            if len(logged) >= count:
                return
        except NotFound:
            pass
        time.sleep(0.2)


def _figures(
    settings: ferry.Settings, names: Names, traffic: Traffic, decision: int | None
) -> dict[str, Any]:
    log = load_predictions(names.deployment, with_feedback=True, settings=settings)
    log = log.sort_values("time").reset_index(drop=True)
    changed = pd.Timestamp(traffic.changed_at or time.time(), unit="s", tz="UTC")
    right = log["prediction"] == log["label"]
    alerts = [
        a for a in list_alerts(settings, monitor=names.monitor, limit=1000) if a.state == "fired"
    ]
    false_alerts = [a for a in alerts if pd.Timestamp(a.window_end, unit="ms", tz="UTC") < changed]
    detected = sorted(
        (a for a in alerts if pd.Timestamp(a.window_end, unit="ms", tz="UTC") >= changed),
        key=lambda a: a.window_end,
    )
    delay = None
    if detected:
        end = pd.Timestamp(detected[0].window_end, unit="ms", tz="UTC")
        end += pd.Timedelta(milliseconds=1)  # window bounds are whole milliseconds
        delay = int(((log["time"] >= changed) & (log["time"] < end)).sum())
    story = decision_story(settings, decision) if decision is not None else None
    promoted = None
    if story is not None and story["outcome"] == "promoted":
        promoted = pd.Timestamp(story["events"][-1]["time"], unit="ms", tz="UTC")
    candidate = story["links"].get("candidate", {}).get("version") if story else None
    new_version = int(candidate.rsplit("/", 1)[1]) if candidate else None
    before = log["time"] < changed
    old_after = ~before & (log["version"] == log["version"].min())
    if promoted is not None:
        old_after &= log["time"] < promoted
    after = (log["time"] >= promoted) if promoted is not None else pd.Series(False, index=log.index)
    return {
        "predictions": len(log),
        "changed_after": int(before.sum()),
        "detection_delay": delay,
        "false_alerts": len(false_alerts),
        "alerts": len(alerts),
        "accuracy_before": float(right[before].mean()),
        "accuracy_drifted_old_model": float(right[old_after].mean()) if old_after.any() else None,
        "accuracy_after_promotion": float(right[after].mean()) if after.any() else None,
        "rows_after_promotion": int(after.sum()),
        "outcome": story["outcome"] if story else None,
        "new_version": new_version,
    }


def _print_timeline(
    console: Console,
    settings: ferry.Settings,
    decision: int | None,
    started: float,
    traffic: Traffic,
) -> None:
    if decision is None:
        console.print("No decision was taken.")
        return
    story = decision_story(settings, decision)
    table = Table(title=f"Decision {decision}: the timeline", title_justify="left")
    for column in ("t (s)", "step", "what happened"):
        table.add_column(column)
    if traffic.changed_at is not None:
        table.add_row(f"{traffic.changed_at - started:.1f}", "change", "the world changed")
    for event in story["events"]:
        table.add_row(f"{event['time'] / 1000 - started:.1f}", event["kind"], event["message"])
    console.print(table)


def _print_figures(console: Console, figures: dict[str, Any], webhooks: int) -> None:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    table = Table(title="The loop's figures", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    delay = figures["detection_delay"]
    table.add_row(
        "predictions between the change and the alert", "-" if delay is None else str(delay)
    )
    table.add_row("false alerts before the change", str(figures["false_alerts"]))
    table.add_row("alert messages the webhook received", str(webhooks))
    table.add_row("accuracy before the change", pct(figures["accuracy_before"]))
    table.add_row("accuracy after it, old model", pct(figures["accuracy_drifted_old_model"]))
    table.add_row(
        f"accuracy after promotion ({figures['rows_after_promotion']} predictions)",
        pct(figures["accuracy_after_promotion"]),
    )
    console.print(table)


if __name__ == "__main__":
    main()
