"""Web UI benchmark: ferryml's UI against MLflow's, in headless Chromium, in one run.

    python benchmarks/ui.py [--runs 10000] [--steps 100000] [--repeats 3]

Both sides hold the same runs (_ui_workload.py): 10,000 runs of 20 params and 20 metrics
each, and one run with a 100,000-step metric, in SQLite. ferryml's are written through its
store; MLflow's through its client for the schema and sqlite3 for the rows
(_ui_mlflow_fill.py, in MLflow's venv: `make venv-mlflow`). Then `ferry server --no-auth`
and `mlflow server --workers 1` (as PEERS.md measured it) each serve their store on a free
port of 127.0.0.1, and Playwright drives Debian's Chromium (/usr/bin/chromium) against
each, timing from the browser's side:

- first rows: from navigating to the experiment's runs page until the newest run's row
  shows (ferryml's `/experiments/ID`, MLflow's `#/experiments/ID/runs`).
- re-sort by a metric: ferryml: a click on the m1 column's header until the rows are
  redrawn in that order; MLflow: its runs page opened with that order in the URL until the
  run with the largest m1 shows first (MLflow's table re-sorts through the same request).
- filter `metrics.m0 > 0.5`: typed into the search box, Enter, until the rows are redrawn.
- a 100,000-step metric drawn: from navigating to the run's page until its chart is drawn.

Medians of ``--repeats`` after one warm-up, each in a fresh page of one browser context.
Prints a table and the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _ui_workload import LONG_KEY, long_curve, seeded_runs  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FERRY = str(Path(sys.executable).with_name("ferry"))
TARGETS_MS = {"first rows": 1000, "re-sort": 300, "filter": 300, "100k-step chart": 500}


def log(message: str) -> None:
    print(f"[ui] {message}", file=sys.stderr, flush=True)


def mlflow_python() -> str:
    """The Makefile's cached MLflow venv (requirements/mlflow.txt)."""
    digest = hashlib.sha256((ROOT / "requirements" / "mlflow.txt").read_bytes()).hexdigest()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ferryml"
    version = f"{sys.version_info[0]}-{sys.version_info[1]}-{digest[:12]}"
    python = cache / f"venv-mlflow-{version}" / "bin" / "python"
    if not python.exists():
        sys.exit(f"{python} is missing: run `make venv-mlflow` first.")
    return str(python)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the stores ----------------------------------------------------------------------------


def fill_ferry(home: Path, runs: int, steps: int) -> dict[str, Any]:
    """The runs' rows in one transaction (one create_run each, with its commit, took 70 ms
    apiece at load 24), then their values through the store's batched write path."""
    import uuid

    from ferryml.config import Settings
    from ferryml.store import _schema as t
    from ferryml.store.records import EndRecord, ParamRecord, StartRecord, metric_record
    from ferryml.store.sql import SqlStore

    settings = Settings.resolve(home=home, cwd=home, environ={})
    store = SqlStore(settings.store_url).open()
    try:
        experiment = store.create_experiment("ui-bench")
        start = int(time.time() * 1000) - runs * 1000
        ids: dict[str, str] = {}
        rows, batch = [], []
        for i, (name, params, metrics) in enumerate(seeded_runs(runs)):
            t0, rid = start + i * 1000, uuid.uuid4().hex
            ids[name] = rid
            rows.append({"run_id": rid, "run_name": name, "start_time": t0})
            batch += [StartRecord(rid)]
            batch += [ParamRecord(rid, k, v) for k, v in params.items()]
            batch += [metric_record(rid, k, v, t0, 0) for k, v in metrics.items()]
            batch += [EndRecord(rid, "FINISHED", t0 + 500, None)]
        long_id = uuid.uuid4().hex
        rows.append({"run_id": long_id, "run_name": "long", "start_time": start - 1000})
        batch += [metric_record(long_id, LONG_KEY, v, start + s, s) for s, v in long_curve(steps)]
        batch += [EndRecord(long_id, "FINISHED", start, None)]
        with store.engine.begin() as conn:
            common = {"experiment_id": int(experiment), "status": "RUNNING", "user_id": "bench"}
            conn.execute(t.runs.insert(), [{**common, **row} for row in rows])
        for at in range(0, len(batch), 50_000):
            store.write_records(batch[at : at + 50_000])
    finally:
        store.close()
    return {"experiment_id": experiment, "ids": ids, "long": long_id}


def fill_mlflow(folder: Path, runs: int, steps: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            mlflow_python(),
            str(HERE / "_ui_mlflow_fill.py"),
            str(folder / "mlflow.db"),
            str(folder / "artifacts"),
            str(runs),
            str(steps),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the servers ---------------------------------------------------------------------------


@contextmanager
def server(argv: list[str], env: dict[str, str], url: str, limit_s: float = 300) -> Iterator[None]:
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + limit_s
        while True:
            if process.poll() is not None:
                sys.exit(f"{argv[0]} exited with {process.returncode}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"{' '.join(argv)} did not answer within {limit_s} s")
                time.sleep(0.2)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- the browser ---------------------------------------------------------------------------


def timed(page_of: Callable[[], Any], action: Callable[[Any], None], repeats: int) -> float:
    """Median milliseconds of ``action`` on a fresh page, after one warm-up."""
    times = []
    for i in range(repeats + 1):
        page = page_of()
        try:
            t = time.perf_counter()
            action(page)
            if i:
                times.append((time.perf_counter() - t) * 1000)
        finally:
            page.close()
    return statistics.median(times)


def ferry_figures(url: str, data: dict[str, Any], page_of: Any, repeats: int) -> dict[str, float]:
    runs_url = f"{url}/experiments/{data['experiment_id']}"
    newest = max(data["ids"])
    top_m1 = data["top_m1"]

    def rows(page: Any) -> None:
        page.goto(runs_url, wait_until="commit")
        page.wait_for_selector(f"#runs tbody tr[data-run] a:text-is('{newest}')")

    def ready(page: Any) -> int:
        rows(page)
        page.wait_for_function("() => document.getElementById('runs').dataset.version")
        return int(page.get_attribute("#runs", "data-version"))

    def resort(page: Any) -> None:
        version = ready(page)
        t = time.perf_counter()
        page.locator("th button.sort", has_text="m1").first.click()
        page.wait_for_function(f"() => document.getElementById('runs').dataset.version > {version}")
        page.wait_for_function("() => location.search.includes('DESC')")
        first = page.inner_text("#runs tbody tr[data-run] td:nth-child(2) a")
        assert first == top_m1, (first, top_m1)
        resort.ms.append((time.perf_counter() - t) * 1000)  # type: ignore[attr-defined]

    def filtered(page: Any) -> None:
        version = ready(page)
        t = time.perf_counter()
        page.fill("#filter", "metrics.m0 > 0.5")
        page.press("#filter", "Enter")
        page.wait_for_function(f"() => document.getElementById('runs').dataset.version > {version}")
        filtered.ms.append((time.perf_counter() - t) * 1000)  # type: ignore[attr-defined]

    def chart(page: Any) -> None:
        page.goto(f"{url}/runs/{data['long']}", wait_until="commit")
        page.wait_for_selector(f"figure[data-key={LONG_KEY}][data-drawn-ms]")

    resort.ms, filtered.ms = [], []  # type: ignore[attr-defined]
    figures = {"first rows": timed(page_of, rows, repeats)}
    timed(page_of, resort, repeats)
    timed(page_of, filtered, repeats)
    figures["re-sort"] = statistics.median(resort.ms[1:])  # type: ignore[attr-defined]
    figures["filter"] = statistics.median(filtered.ms[1:])  # type: ignore[attr-defined]
    figures["100k-step chart"] = timed(page_of, chart, repeats)
    return figures


def mlflow_figures(url: str, data: dict[str, Any], page_of: Any, repeats: int) -> dict[str, float]:
    eid = data["experiment_id"]
    # The view's every setting in the URL: MLflow keeps the last sort and filter otherwise.
    runs_url = (
        f"{url}/#/experiments/{eid}/runs?workflowType=machine_learning&searchFilter="
        "&startTime=ALL&lifecycleFilter=Active&modelVersionFilter=All+Runs"
    )
    by_start = "orderByKey=attributes.start_time&orderByAsc=false"
    newest = max(data["ids"])
    top_m1 = data["top_m1"]
    first_match = data["first_m0_match"]
    first_miss = data["first_m0_miss"]

    def rows(page: Any) -> None:
        page.goto(f"{runs_url}&{by_start}", wait_until="commit")
        page.get_by_text(newest, exact=True).first.wait_for()

    def resort(page: Any) -> None:
        order = "orderByKey=metrics.%60m1%60&orderByAsc=false"
        page.goto(f"{runs_url}&{order}", wait_until="commit")
        page.get_by_text(top_m1, exact=True).first.wait_for()

    def filtered(page: Any) -> None:
        rows(page)
        box = page.get_by_placeholder("metrics.rmse", exact=False).first
        box.fill("metrics.m0 > 0.5")
        box.press("Escape")  # closes the autocomplete, which would take Enter
        t = time.perf_counter()
        box.press("Enter")
        page.get_by_text(first_miss, exact=True).first.wait_for(state="detached")
        page.get_by_text(first_match, exact=True).first.wait_for(state="attached")
        filtered.ms.append((time.perf_counter() - t) * 1000)  # type: ignore[attr-defined]

    def chart(page: Any) -> None:
        page.goto(
            f"{url}/#/experiments/{eid}/runs/{data['long']}/model-metrics", wait_until="commit"
        )
        page.locator("svg .scatterlayer path").first.wait_for(state="attached")

    filtered.ms = []  # type: ignore[attr-defined]
    figures = {"first rows": timed(page_of, rows, repeats)}
    figures["re-sort"] = timed(page_of, resort, repeats)
    timed(page_of, filtered, repeats)
    figures["filter"] = statistics.median(filtered.ms[1:])  # type: ignore[attr-defined]
    figures["100k-step chart"] = timed(page_of, chart, repeats)
    return figures


def expectations(runs: int) -> dict[str, str]:
    """The run names each side's pages must show: the largest m1, and the newest runs with
    and without m0 > 0.5."""
    seeded = list(seeded_runs(runs))
    top = max(seeded, key=lambda r: r[2]["m1"])[0]
    newest_first = list(reversed(seeded))
    match = next(r[0] for r in newest_first if r[2]["m0"] > 0.5)
    miss = next(r[0] for r in newest_first if r[2]["m0"] <= 0.5)
    return {"top_m1": top, "first_m0_match": match, "first_m0_miss": miss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sides", default="ferryml,mlflow")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    sides = args.sides.split(",")
    expected = expectations(args.runs)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ferry-ui-bench-") as tmp, sync_playwright() as pw:
        root = Path(tmp)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(300_000)
        if "ferryml" in sides:
            home = root / "ferry"
            t = time.perf_counter()
            data = {**fill_ferry(home, args.runs, args.steps), **expected}
            log(f"ferryml store filled in {time.perf_counter() - t:.0f} s")
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
            env["FERRY_HOME"] = str(home)
            argv = [FERRY, "server", "--no-auth", "--port", str(port)]
            url = f"http://127.0.0.1:{port}"
            with server(argv, env, f"{url}/health"):
                results["ferryml"] = ferry_figures(url, data, context.new_page, args.repeats)
            log(f"ferryml: {results['ferryml']}")
        if "mlflow" in sides:
            folder = root / "mlflow"
            (folder / "artifacts").mkdir(parents=True)
            t = time.perf_counter()
            data = {**fill_mlflow(folder, args.runs, args.steps), **expected}
            log(f"MLflow store filled in {time.perf_counter() - t:.0f} s")
            port = free_port()
            mlflow = str(Path(mlflow_python()).with_name("mlflow"))
            argv = [
                mlflow,
                "server",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--default-artifact-root",
                (folder / "artifacts").as_uri(),
            ]
            env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
            url = f"http://127.0.0.1:{port}"
            with server(argv, env, f"{url}/health"):
                results["mlflow"] = mlflow_figures(url, data, context.new_page, args.repeats)
            log(f"MLflow: {results['mlflow']}")
        browser.close()
    load = os.getloadavg()
    print(
        f"\nweb UI, {args.runs:,} runs x 20 params x 20 metrics, a {args.steps:,}-step metric;"
        f" medians of {args.repeats}, ms"
    )
    print(f"{'':18}{'ferryml':>10}{'MLflow':>10}{'ratio':>8}{'target':>9}")
    for name, target in TARGETS_MS.items():
        f = results.get("ferryml", {}).get(name)
        m = results.get("mlflow", {}).get(name)
        ratio = f"{m / f:.1f}x" if f and m else ""
        cells = [f"{v:>10.0f}" if v is not None else f"{'-':>10}" for v in (f, m)]
        print(f"{name:18}{''.join(cells)}{ratio:>8}{target:>7}ms")
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(json.dumps({"results": results, "load": load}))


if __name__ == "__main__":
    main()
