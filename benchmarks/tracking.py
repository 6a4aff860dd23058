"""Tracking benchmark: ferryml against MLflow on the same workloads, in one run.

Each figure comes with the ratio (how many times faster ferryml is) and its target. Targets
sit on rows that compare the same work: values until they are stored (a ferryml call
returns once the value is in its journal, an MLflow call once it is committed), and the
calls alone next to MLflow's own asynchronous logging (``synchronous=False``).

    python benchmarks/tracking.py [--quick] [--json] [--search-only]

MLflow gets its own venv (benchmarks/.cache/mlflow-venv, made on first use) so it never
touches the project's dependencies. Each side runs in a fresh interpreter (_ferry_worker.py,
_mlflow_worker.py) with a fresh temp folder holding a SQLite store. Stdlib only.

The searches are timed in rounds that alternate the sides (``search_rounds``): after each
side has made its runs and timed its first round, each further round starts a fresh
interpreter per side over the same store, the sides taking turns going first, so a change
in the machine's load weighs on both. The figure is the median of the rounds' medians, and
each round's ratio is printed, so "in every run" can be read off one run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".cache" / "mlflow-venv"
MLFLOW_PY = str(VENV / "bin" / "python")
FERRY_PY = sys.executable  # this script runs from the repo's .venv
MLFLOW_PIN = "3.17.2"  # the version PEERS.md measured
FULL = {"n_log_metric": 2000, "n_batch_values": 20000, "batch_chunk": 1000, "n_runs": 1000,
        "repeats": 3, "search_repeats": 5, "search_rounds": 5, "import_repeats": 5}  # fmt: skip
QUICK = {"n_log_metric": 200, "n_batch_values": 2000, "batch_chunk": 1000, "n_runs": 100,
         "repeats": 1, "search_repeats": 3, "search_rounds": 2, "import_repeats": 3}  # fmt: skip
# MLflow's telemetry would reach for a network this machine lacks; turning it off can only
# make MLflow faster (measured: no difference here).
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
FERRY_ENV = {"FERRY_HOME": "{tmp}"}
SEARCHES = ("filter", "order")
IMPORT_TARGET_MS = 150
# key, label, unit, higher is better, target: ferryml this many times faster (None: shown only)
ROWS = [
    ("log_metric_total", "log_metric one by one, until stored", "calls/s", True, 200),
    ("log_metric", "  the calls alone (MLflow's return once stored)", "calls/s", True, None),
    ("async_call", "log_metric vs MLflow synchronous=False, the calls", "calls/s", True, 100),
    ("async_total", "  same, until stored", "calls/s", True, 200),
    ("log_batch", "log_batch, chunks of 1,000, until stored", "values/s", True, 10),
    ("log_batch_call", "  the calls alone (MLflow's return once stored)", "values/s", True, None),
    ("filter", "search metrics.m0 > 0.5", "ms", False, 20),
    ("order", "search order_by metrics.m1 DESC", "ms", False, 20),
    ("populate", "create the runs searched", "s", False, None),
    ("start_run", "start_run, first run", "ms", False, None),
    ("first_use", "first use of a new store", "ms", False, None),
    ("import", "import", "ms", False, None),  # absolute target, IMPORT_TARGET_MS
    ("import_use", "  import + start_run attribute", "ms", False, None),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_mlflow() -> str:
    """Make the MLflow venv if missing; return the installed MLflow version."""
    marker = VENV / ".installed"  # written last, so a half-made venv is made again
    if not marker.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        log(f"creating {VENV} (once) ...")
        venv.create(VENV, with_pip=True)
        for spec in (f"mlflow=={MLFLOW_PIN}", "mlflow>=3.17,<3.18", "mlflow>=3,<4"):
            log(f"pip install {spec}")
            pip = [MLFLOW_PY, "-m", "pip", "install", "--quiet", spec]
            if subprocess.run(pip, check=False, stdout=sys.stderr).returncode == 0:
                break
        else:
            sys.exit(f"could not install mlflow into {VENV}")
        code = "import importlib.metadata as m; print(m.version('mlflow'))"
        out = subprocess.run([MLFLOW_PY, "-c", code], capture_output=True, text=True, check=True)
        marker.write_text(out.stdout.strip())
    version = marker.read_text().strip()
    if version != MLFLOW_PIN:
        log(f"note: mlflow {MLFLOW_PIN} was not available; using mlflow {version}")
    return version


def run_worker(
    py: str, script: str, cfg: dict, env: dict, tmp: str | None = None
) -> dict[str, Any]:
    """Run one side in a fresh interpreter over the store in ``tmp`` (by default a fresh
    temp folder, removed after); merge the JSON lines it prints. A worker that fails part
    way still gives the figures it printed before."""
    if tmp is None:
        with tempfile.TemporaryDirectory(prefix="ferry-bench-") as fresh:
            return run_worker(py, script, cfg, env, fresh)
    res: dict[str, Any] = {}
    env = {**os.environ, **{k: v.format(tmp=tmp) for k, v in env.items()}}
    p = subprocess.Popen(
        [py, str(HERE / script), tmp, json.dumps(cfg)],
        cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout and p.stderr
    tail: collections.deque[str] = collections.deque(maxlen=20)
    for line in p.stderr:  # echo the worker's progress, keep the rest in case it fails
        tail.append(line)
        if line.startswith(("[ferryml] ", "[mlflow] ")):
            sys.stderr.write(line)
    for line in p.stdout:  # small, so reading it after stderr cannot deadlock
        res.update(json.loads(line))
    if p.wait() != 0:
        err = "".join(tail).strip()
        log(f"{script} failed (exit {p.returncode}):\n{err}")
        res["error"] = err.splitlines()[-1] if err else f"exit {p.returncode}"
    return res


def search_rounds(f: dict, m: dict, cfg: dict, sides: dict[str, Path]) -> None:
    """Time the searches again in ``search_rounds - 1`` more rounds over each side's store,
    the sides taking turns going first; each side's figures become the medians of its
    rounds', and ``rounds`` keeps every round's."""
    workers = {"ferryml": (f, FERRY_PY, "_ferry_worker.py", FERRY_ENV),
               "mlflow": (m, MLFLOW_PY, "_mlflow_worker.py", MLFLOW_ENV)}  # fmt: skip
    for res, *_ in workers.values():
        res["rounds"] = [{k: res[k]["s"] for k in SEARCHES if k in res}]
    order = ["ferryml", "mlflow"]
    for n in range(1, cfg["search_rounds"]):
        log(f"search round {n + 1} of {cfg['search_rounds']} ...")
        for side in order if n % 2 else order[::-1]:
            res, py, script, env = workers[side]
            again = run_worker(py, script, {**cfg, "search_round": True}, env, str(sides[side]))
            res["rounds"].append({k: again[k]["s"] for k in SEARCHES if k in again})
    for res, *_ in workers.values():
        for key in SEARCHES:
            times = [r[key] for r in res["rounds"] if key in r]
            if key in res and times:
                res[key]["s"] = statistics.median(times)


def import_ms(py: str, code: str, repeats: int, env: dict) -> float | None:
    """Median of `python -c CODE` minus median of `python -c pass`, in ms."""

    def once(c: str) -> float:
        t = time.perf_counter()
        subprocess.run([py, "-c", c], env=env, check=True, capture_output=True)
        return time.perf_counter() - t

    try:
        once(code)  # warm-up: writes .pyc files, fills the page cache
        base, imp = [], []
        for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
            base.append(once("pass"))
            imp.append(once(code))
    except subprocess.CalledProcessError as e:
        log(f"{code!r} failed: {e.stderr.decode().strip()[-500:]}")
        return None
    return (statistics.median(imp) - statistics.median(base)) * 1000


def time_imports(f: dict, m: dict, cfg: dict) -> None:
    log("timing imports ...")
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        for res, py, mod, env in ((f, FERRY_PY, "ferryml", {"FERRY_HOME": tmp}),
                                  (m, MLFLOW_PY, "mlflow", MLFLOW_ENV)):  # fmt: skip
            env = {**os.environ, **env}
            n = cfg["import_repeats"]
            res["import_ms"] = import_ms(py, f"import {mod}", n, env)
            # ferryml imports lazily: also time the first touch of the tracking API.
            res["import_use_ms"] = import_ms(py, f"import {mod}; {mod}.start_run", n, env)


def figures(res: dict, cfg: dict) -> dict[str, float]:
    """One side's figure per row key; keys missing where that side failed."""
    n = cfg["n_log_metric"]
    recipes = {
        "log_metric": lambda: n / res["log_metric"]["loop_s"],
        "log_metric_total": lambda: n / res["log_metric"]["total_s"],
        # ferryml has one way to log; MLflow's asynchronous one is compared with it
        "async_call": lambda: n / res.get("log_metric_async", res["log_metric"])["loop_s"],
        "async_total": lambda: n / res.get("log_metric_async", res["log_metric"])["total_s"],
        "log_batch": lambda: cfg["n_batch_values"] / res["log_batch_s"],
        "log_batch_call": lambda: (
            cfg["n_batch_values"] / res.get("log_batch_call_s", res["log_batch_s"])
        ),
        "filter": lambda: res["filter"]["s"] * 1e3,
        "order": lambda: res["order"]["s"] * 1e3,
        "populate": lambda: res["populate_s"],
        "start_run": lambda: res["start_run_s"] * 1e3,
        "first_use": lambda: res["first_use_s"] * 1e3,
        "import": lambda: res["import_ms"],
        "import_use": lambda: res["import_use_ms"],
    }
    out = {}
    for key, recipe in recipes.items():
        try:
            value = recipe()
        except (KeyError, TypeError):
            continue
        if value is not None:
            out[key] = value
    return out


def problems(res: dict, cfg: dict) -> dict[str, str]:
    """Wrong answers, by row key: a fast wrong answer is no PASS."""
    found = {}
    if res.get("log_metric", {}).get("latest_ok") is False:
        found["log_metric"] = "last 'loss' value read back wrong"
    if res.get("log_metric_async", {}).get("stored_ok") is False:
        found["async_total"] = "not every value stored after flush_async_logging"
    if "filter" in res and res["filter"]["count"] != res.get("filter_expected"):
        found["filter"] = f"{res['filter']['count']} runs, expected {res['filter_expected']}"
    order = res.get("order")
    if order and (order["count"] != min(cfg["n_runs"], 1000) or not order["sorted_ok"]):
        found["order"] = f"{order['count']} runs, sorted: {order['sorted_ok']}"
    return found


def report(f: dict, m: dict, cfg: dict) -> list[dict]:
    ff, mf = figures(f, cfg), figures(m, cfg)
    fp, mp = problems(f, cfg), problems(m, cfg)
    rows = []
    for key, label, unit, higher, target in ROWS:
        fv, mv = ff.get(key), mf.get(key)
        ratio = (fv / mv if higher else mv / fv) if fv and mv and fv > 0 and mv > 0 else None
        notes = []
        if key == "import":  # the one absolute target
            shown, missing = f"<{IMPORT_TARGET_MS} ms", fv is None
            ok = fv is not None and fv < IMPORT_TARGET_MS
        else:
            shown, missing = (f">={target}x" if target else ""), ratio is None
            ok = ratio is not None and target is not None and ratio >= target
        if key.startswith(("log_metric", "async")) and fv and mv:
            notes.append(f"{1e6 / fv:.1f} vs {1e6 / mv:.0f} µs/call")
        if key in SEARCHES and key in f and key in m:
            notes.append(
                f"{f[key]['count']} vs {m[key]['count']} runs; MLflow via {m[key]['path']}"
            )
            pairs = zip(f.get("rounds", []), m.get("rounds", []), strict=False)
            each = [f"{mr[key] / fr[key]:.1f}x" for fr, mr in pairs if key in fr and key in mr]
            if len(each) > 1:
                notes.append(f"rounds: {' '.join(each)}")
        for side, probs in (("ferryml", fp), ("MLflow", mp)):
            if key in probs:
                ok = False
                notes.append(f"{side} WRONG: {probs[key]}")
        status = "" if not shown else "n/a" if missing else "PASS" if ok else "MISS"
        note = "; ".join(notes)
        rows.append({"key": key, "workload": label, "unit": unit, "ferryml": fv, "mlflow": mv,
                     "ratio": ratio, "target": shown, "status": status, "note": note})  # fmt: skip
    return rows


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--search-only", action="store_true", help="the search workload alone")
    args = ap.parse_args()
    cfg = {**(QUICK if args.quick else FULL), "search_only": args.search_only}

    version = ensure_mlflow()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        sides = {side: Path(tmp, side) for side in ("mlflow", "ferryml")}
        for folder in sides.values():
            folder.mkdir()
        log(f"running MLflow {version} side ...")
        m = run_worker(MLFLOW_PY, "_mlflow_worker.py", cfg, MLFLOW_ENV, str(sides["mlflow"]))
        log("running ferryml side ...")
        f = run_worker(FERRY_PY, "_ferry_worker.py", cfg, FERRY_ENV, str(sides["ferryml"]))
        search_rounds(f, m, cfg, sides)
    if not args.search_only:
        time_imports(f, m, cfg)
    rows = report(f, m, cfg)
    if args.search_only:
        rows = [r for r in rows if r["key"] in ("filter", "order", "populate")]

    if args.json:
        doc = {"config": cfg, "mlflow_version": version, "ferryml": f, "mlflow": m, "rows": rows}
        print(json.dumps(doc, indent=2))
        return
    print(f"ferryml {f.get('version', '?')} vs MLflow {version} (own venv); counts: {cfg}")
    for side, res in (("ferryml", f), ("MLflow", m)):
        if "error" in res:
            print(f"{side} side FAILED: {res['error']}")
    for r in rows:  # one line per workload
        line = f"{r['workload'].strip()}: ferryml {fmt(r['ferryml'])} {r['unit']}, "
        line += f"MLflow {fmt(r['mlflow'])} {r['unit']}"
        if r["ratio"]:
            r_ = r["ratio"]
            line += f"; ferryml {r_:.1f}x faster" if r_ >= 1 else f"; ferryml {1 / r_:.1f}x SLOWER"
        if r["target"]:
            line += f" (target {r['target']}: {r['status']})"
        print(line + (f" — {r['note']}" if r["note"] else ""))
    table: list[tuple[str, ...]] = [
        ("workload", "ferryml", "MLflow", "unit", "ratio", "target", "result")
    ]
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "—"
        cells = (fmt(r["ferryml"]), fmt(r["mlflow"]), r["unit"], ratio, r["target"], r["status"])
        table.append((r["workload"], *cells))
    print()
    print_table(table)


def print_table(table: list[tuple[str, ...]]) -> None:
    """Print rows of cells in aligned columns, the first row a header."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in (table[0], tuple("-" * w for w in widths), *table[1:]):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":
    main()
