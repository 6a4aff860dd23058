"""A model server ready to be watched, as a user runs it: ``ferry serve --all-deployments``
with request ids in and out, a JSON access log, the model repository extension, memory per
loaded model, and the Grafana dashboard and Prometheus rules of ``ferry deploy`` checked
by promtool and by a real Prometheus that scrapes the server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_net import free_port
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import NotFound
from ferryml.predictions import load as load_predictions
from ferryml.serving.deployments import Deployments

pytestmark = pytest.mark.e2e

FERRY = str(Path(sys.executable).parent / "ferry")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass
class World:
    settings: Settings
    env: dict[str, str]
    client: httpx.Client
    url: str
    port: int
    stderr: Path
    X: pd.DataFrame


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "FERRY_HOME": str(settings.home),
        "FERRY_STORE": settings.store_url,
        "FERRY_ARTIFACTS": settings.artifacts_url,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Model 'cancer' (versions 1 and 2), deployments 'churn' and 'other' of version 1, a
    drift monitor of 'churn' whose newest window is long past and a decision of its policy
    awaiting approval; served by one ``ferry serve --all-deployments cancer/2 --batch``."""
    from ferryml.store.factory import open_automation_store
    from ferryml.store.sql import SqlStore
    from ferryml.store.sql_monitors import SqlMonitorStore

    root = tmp_path_factory.mktemp("observe")
    settings = Settings.resolve(home=root / "home", cwd=root, environ={})
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    for c in (1.0, 0.1):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(X, y)
        with ferry.start_run():
            ferry.log_model(model, input_example=X.head(), registered_model_name="cancer")
    ferry.configure(home=settings.home)
    manager = Deployments(settings)
    manager.create("churn", "cancer", 1)
    manager.create("other", "cancer", 1)
    manager.close()
    monitors = SqlMonitorStore(SqlStore(settings.store_url).open())
    monitors.create("churn-drift", {"name": "churn-drift", "deployment": "churn", "window": "1h"})
    monitors.add_result("churn-drift", 0, 3_600_000, {"drift_share": 0.9, "rows": 50.0}, {})
    monitors.close()
    automation = open_automation_store(settings)
    event = ("trigger", "drift_share > 0.3", {})
    automation.create_decision("retrain-churn", "churn", "awaiting_approval", {}, event)
    automation.close()

    port = free_port()
    stderr = root / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [FERRY, "serve", "--all-deployments", "cancer/2", "--batch", "--port", str(port)],
            env=_env(settings),
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"ferry serve did not start: {stderr.read_text()}")
                time.sleep(0.1)
            yield World(settings, _env(settings), client, url, port, stderr, X)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _predict(world: World, name: str, **headers: str) -> httpx.Response:
    rows = world.X.head(2).to_dict("records")
    return world.client.post(f"/v1/models/{name}/predict", json={"records": rows}, headers=headers)


def _access_lines(world: World, request_id: str) -> list[dict[str, Any]]:
    """The access log's lines of ``request_id`` (the log is written in the background)."""
    deadline = time.monotonic() + 10
    while True:
        found = []
        for line in world.stderr.read_text().splitlines():
            if line.startswith("{") and f'"{request_id}"' in line:
                found.append(json.loads(line))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- many models --------------------------------------------------------------------------


def test_all_deployments_and_named_models_are_served_side_by_side(world: World) -> None:
    listed = world.client.get("/v1/models").json()["models"]
    assert [(m["name"], m["version"]) for m in listed] == [
        ("churn", 1),
        ("other", 1),
        ("cancer", 2),
    ]
    assert _predict(world, "other").status_code == 200


def test_serving_all_deployments_of_an_empty_store_is_a_one_line_error(tmp_path: Path) -> None:
    settings = Settings.resolve(home=tmp_path / "home", cwd=tmp_path, environ={})
    done = subprocess.run(
        [FERRY, "serve", "--all-deployments", "--port", str(free_port())],
        env=_env(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (
        2,
        "error: --all-deployments: the store has no deployments; create one with "
        "`ferry deploy create NAME --model MODEL --version N`.\n",
    )


def test_the_repository_index_lists_every_model_served_or_loadable(world: World) -> None:
    r = world.client.post("/v2/repository/index", json={})
    assert r.status_code == 200
    assert r.json() == [
        {"name": "churn", "version": "1", "state": "READY", "reason": ""},
        {"name": "other", "version": "1", "state": "READY", "reason": ""},
        {"name": "cancer", "version": "2", "state": "READY", "reason": ""},
    ]
    assert world.client.post("/v2/repository/index").json() == r.json()  # no body at all
    bad = world.client.post("/v2/repository/index", json={"ready": "yes"})
    assert bad.status_code == 400
    assert bad.json() == {
        "error": 'The index request is an object with an optional boolean "ready", e.g. '
        "{\"ready\": true}; got {'ready': 'yes'}."
    }


def test_unload_then_load_a_deployment_and_load_one_created_later(world: World) -> None:
    client = world.client
    assert client.post("/v2/repository/models/other/unload").status_code == 200
    gone = _predict(world, "other")
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == (
        "Model 'other' is not served here; this server serves 'churn', 'cancer'."
    )
    index = client.post("/v2/repository/index", json={}).json()
    assert {"name": "other", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    assert client.post("/v2/repository/index", json={"ready": True}).json() == [
        {"name": "churn", "version": "1", "state": "READY", "reason": ""},
        {"name": "cancer", "version": "2", "state": "READY", "reason": ""},
    ]
    assert 'ferry_model_memory_bytes{model="other"' not in client.get("/metrics").text
    assert client.post("/v2/repository/models/other/load").status_code == 200
    assert _predict(world, "other").json()["version"] == 1

    manager = Deployments(world.settings)
    manager.create("late", "cancer", 2)
    manager.close()
    index = client.post("/v2/repository/index", json={}).json()
    assert {"name": "late", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    assert client.post("/v2/repository/models/late/load").status_code == 200
    assert client.get("/v2/models/late/ready").json() == {"name": "late", "ready": True}
    assert _predict(world, "late").json()["version"] == 2
    assert client.post("/v2/repository/models/late/unload").status_code == 200


def test_loading_or_unloading_an_unknown_model_is_a_404_in_the_protocols_body(
    world: World,
) -> None:
    r = world.client.post("/v2/repository/models/nope/load")
    assert r.status_code == 404
    assert r.json() == {
        "error": "Model 'nope' is not in this server's repository (served: 'churn', 'cancer', "
        "'other'); load a name the server was started with or a deployment (`ferry deploy "
        "list`)."
    }
    r = world.client.post("/v2/repository/models/nope/unload")
    assert (r.status_code, r.json()) == (
        404,
        {"error": "Model 'nope' is not loaded on this server; see POST /v2/repository/index."},
    )


def test_each_loaded_model_memory_is_a_gauge_by_model_route_and_version(world: World) -> None:
    families = {
        f.name: f for f in text_string_to_metric_families(world.client.get("/metrics").text)
    }
    memory = {
        (s.labels["model"], s.labels["route"], s.labels["version"]): s.value
        for s in families["ferry_model_memory_bytes"].samples
    }
    assert set(memory) >= {("churn", "v1", "1"), ("cancer", "primary", "2")}
    # A scaler and a logistic regression of 30 features: a few KB, not the process's MBs.
    assert all(1_000 < size < 1_000_000 for size in memory.values())
    resident = families["process_resident_memory_bytes"].samples[0].value
    assert resident > 10 * max(memory.values())


def test_monitors_and_open_decisions_of_served_deployments_are_gauges(world: World) -> None:
    text = world.client.get("/metrics").text
    for line in (
        'ferry_monitor_metric{deployment="churn",metric="drift_share",monitor="churn-drift"} 0.9',
        'ferry_monitor_window_end_seconds{deployment="churn",monitor="churn-drift"} 3600.0',
        'ferry_monitor_window_seconds{deployment="churn",monitor="churn-drift"} 3600.0',
        'ferry_decisions_open{deployment="churn",policy="retrain-churn",state="awaiting_approval"}'
        " 1.0",
    ):
        assert line in text.splitlines()


# -- request ids and the access log -------------------------------------------------------


def test_a_clients_request_id_comes_back_and_reaches_both_logs(world: World) -> None:
    r = _predict(world, "churn", **{"X-Request-Id": "order-7f3a:retry-1"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "order-7f3a:retry-1"
    ids = r.json()["ids"]
    [line] = _access_lines(world, "order-7f3a:retry-1")
    assert line.pop("duration_ms") > 0 and line.pop("time").endswith("+00:00")
    assert line == {
        "request_id": "order-7f3a:retry-1",
        "method": "POST",
        "route": "/v1/models/{name}/predict",
        "status": 200,
        "model": "churn",
        "version": 1,
    }
    deadline = time.monotonic() + 30  # flushed in the background every second
    while True:
        try:
            logged = load_predictions("churn", settings=world.settings)
        except NotFound:  # nothing flushed yet
            logged = pd.DataFrame({"id": [], "request_id": []})
        mine = logged[logged["id"].isin(ids)]
        if len(mine) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine["request_id"].tolist() == ["order-7f3a:retry-1"] * 2


def test_requests_without_a_sane_id_get_a_new_one(world: World) -> None:
    plain = world.client.get("/health")
    assert UUID.fullmatch(plain.headers["x-request-id"])
    for insane in ("two words", "x" * 129, 'quo"te'):
        r = world.client.get("/health", headers={"X-Request-Id": insane})
        assert UUID.fullmatch(r.headers["x-request-id"]), insane
    assert _access_lines(world, plain.headers["x-request-id"])[0]["route"] == "/health"


def test_errors_carry_an_id_and_a_bounded_route_in_the_access_log(world: World) -> None:
    r = world.client.post(
        "/v2/models/whatever-123/infer", json={"inputs": []}, headers={"X-Request-Id": "e-404"}
    )
    assert (r.status_code, r.headers["x-request-id"]) == (404, "e-404")
    [line] = _access_lines(world, "e-404")
    assert (line["route"], line["status"], line["model"], line["version"]) == (
        "/v2/models/{name}/infer",
        404,
        "unknown",
        None,
    )
    r = world.client.post(
        "/v1/models/churn/predict",
        content=b"{" + b" " * (11 * 1024 * 1024) + b"}",
        headers={"X-Request-Id": "e-413", "Content-Type": "application/json"},
    )
    assert (r.status_code, r.headers["x-request-id"]) == (413, "e-413")
    assert _access_lines(world, "e-413")[0]["status"] == 413


def test_a_pipe_nobody_reads_drops_access_lines_and_never_stalls_a_stop() -> None:
    from ferryml.server._access import AccessLog

    read, write = os.pipe()
    try:
        with os.fdopen(write, "w", closefd=False) as stream:
            log = AccessLog(stream, max_pending=1_000).open()
            for i in range(5_000):  # about 400 KB: far past what a pipe holds
                log.write({"request_id": f"r{i}", "route": "/health", "status": 200})
            started = time.monotonic()
            log.close()
            assert time.monotonic() - started < 8
        assert log.dropped > 0
        first = os.read(read, 4096).split(b"\n")[0]
        assert json.loads(first) == {"request_id": "r0", "route": "/health", "status": 200}
    finally:
        os.close(read)
        os.close(write)


# -- Grafana and Prometheus ---------------------------------------------------------------


def _deploy(world: World, *args: str) -> Path:
    out = Path(tempfile.mkdtemp(dir=world.settings.home.parent)) / "out"
    done = subprocess.run(
        [FERRY, "deploy", *args, "--out", str(out)],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out


_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "le", "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (in braces or grouping clauses) or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if not following.startswith("(") and match.group() not in _NOT_METRICS:
            names.add(match.group())
    return names


def _exported(world: World) -> set[str]:
    """Every sample name the server's /metrics declares, whether or not it has a series."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for family in text_string_to_metric_families(world.client.get("/metrics").text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _dashboard_queries(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_dashboard_and_rule_query_names_a_metric_the_server_exports(world: World) -> None:
    import yaml

    assert metric_names('sum by (le, model) (rate(a_bucket{x="y"}[5m])) / b > on(c) 3 * d') == {
        "a_bucket",
        "b",
        "d",
    }
    queries = _dashboard_queries(_deploy(world, "grafana"))
    rules = yaml.safe_load(_deploy(world, "prometheus-rules").read_text())
    queries += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = set().union(*map(metric_names, queries))
    assert named >= {"ferry_requests_total", "ferry_batch_rows_bucket", "ferry_monitor_metric"}
    assert named - _exported(world) == set()


@pytest.fixture(scope="module")
def rules(world: World) -> Path:
    return _deploy(world, "prometheus-rules", "--for", "0s")


def test_the_rules_pass_promtool(rules: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_a_real_prometheus_scrapes_the_server_and_fires_the_rules(
    world: World, rules: Path, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is missing: apt-get install prometheus (.ci/run installs it)")
    bad = world.X.head(1).astype(object)
    bad.iloc[0, 0] = "many"  # a feature that is not a number: the prediction fails
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "ferry",
                        "static_configs": [{"targets": [f"127.0.0.1:{world.port}"]}],
                    }
                ],
            }
        )
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 90
        firing: set[str] = set()
        wanted = {"FerryDataDrift", "FerryMonitorStale", "FerryPredictionErrors"}
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}"
                )
            try:
                alerts = httpx.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
            except httpx.TransportError:
                continue
            firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
            if firing >= wanted:
                break
            world.client.post("/v1/models/churn/predict", json={"records": bad.to_dict("records")})
        assert firing >= wanted
        groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        health = {
            r["name"]: (r["health"], r.get("lastError", "")) for g in groups for r in g["rules"]
        }
        assert health == {name: ("ok", "") for name in health} and len(health) == 5
        drift = next(a for a in alerts if a["labels"]["alertname"] == "FerryDataDrift")
        assert drift["labels"]["deployment"] == "churn" and float(drift["value"]) == 0.9
        for expr in _dashboard_queries(_deploy(world, "grafana")):
            query = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
            answer = httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()
            assert answer["status"] == "success", (expr, answer)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
