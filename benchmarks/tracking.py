"""Tracking benchmark: the same workloads through ferryml and through MLflow, in one run on
this machine, with the ratio against each target.

    python benchmarks/tracking.py [--quick] [--json]

MLflow gets its own venv (benchmarks/.cache/mlflow-venv, made on first use) so it never
touches the project's dependencies. Each side runs in a fresh interpreter (_ferry_worker.py,
_mlflow_worker.py) with a fresh temp folder holding a SQLite store. Stdlib only.
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

HERE = Path(__file__).resolve().parent
VENV = HERE / ".cache" / "mlflow-venv"
MLFLOW_PY = str(VENV / "bin" / "python")
FERRY_PY = sys.executable  # run this script from the repo's .venv
MLFLOW_PIN = "3.17.2"  # the version PEERS.md measured
FULL = {
    "n_log_metric": 2000,
    "n_batch_values": 20000,
    "batch_chunk": 1000,
    "n_runs": 1000,
    "search_repeats": 5,
    "import_repeats": 5,
}
QUICK = {
    "n_log_metric": 200,
    "n_batch_values": 2000,
    "batch_chunk": 1000,
    "n_runs": 100,
    "search_repeats": 3,
    "import_repeats": 3,
}
# MLflow's telemetry would reach for a network this machine lacks; turning it off can only
# make MLflow faster, never slower.
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


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
            sys.exit("could not install mlflow into " + str(VENV))
        code = "import importlib.metadata as m; print(m.version('mlflow'))"
        out = subprocess.run([MLFLOW_PY, "-c", code], capture_output=True, text=True, check=True)
        marker.write_text(out.stdout.strip())
    version = marker.read_text().strip()
    if version != MLFLOW_PIN:
        log(f"note: mlflow {MLFLOW_PIN} was not available; using mlflow {version}")
    return version


def run_worker(py: str, script: str, cfg: dict, extra_env: dict) -> dict:
    """Run one side in a fresh interpreter and temp folder; return its JSON figures."""
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        env = {**os.environ, **{k: v.format(tmp=tmp) for k, v in extra_env.items()}}
        p = subprocess.Popen(
            [py, str(HERE / script), tmp, json.dumps(cfg)],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        tail: collections.deque[str] = collections.deque(maxlen=15)
        for line in p.stderr:  # echo the worker's progress, keep the rest for errors
            tail.append(line)
            if line.startswith("[") and "] " in line[:12]:
                sys.stderr.write(line)
        stdout = p.stdout.read()
        if p.wait() != 0:
            err = "".join(tail).strip()
            log(f"{script} failed (exit {p.returncode}):\n{err}")
            return {"error": err.splitlines()[-1] if err else f"exit {p.returncode}"}
        return json.loads(stdout.strip().splitlines()[-1])


def import_ms(py: str, module: str, repeats: int, env: dict) -> float | str:
    """Median `python -c "import X"` minus median `python -c pass`, in ms."""

    def once(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([py, "-c", code], env=env, check=True, capture_output=True)
        return time.perf_counter() - t

    try:
        once(f"import {module}")  # warm-up: writes .pyc files, fills the page cache
        base, imp = [], []
        for _ in range(repeats):  # interleaved, so load drift hits both alike
            base.append(once("pass"))
            imp.append(once(f"import {module}"))
    except subprocess.CalledProcessError as e:
        return "error: " + (e.stderr.decode().strip().splitlines() or ["?"])[-1]
    return (statistics.median(imp) - statistics.median(base)) * 1000


def rows_for(f: dict, m: dict, imp: dict, cfg: dict) -> list[dict]:
    """One row per figure: ferryml, MLflow, ratio (how many times faster ferryml is), target.
    A side that failed leaves its column empty; the other side's figures still print."""

    def val(fn, res):
        try:
            return fn(res)
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    n, nb, chunk = cfg["n_log_metric"], cfg["n_batch_values"], cfg["batch_chunk"]
    expected = val(lambda r: r["search"]["filter_expected"], f) or val(
        lambda r: r["search"]["filter_expected"], m
    )
    # label, unit, figure, higher is better, target (x times MLflow), correctness note
    specs = [
        (
            f"log_metric x{n}",
            "calls/s",
            lambda r: n / r["log_metric"]["loop_s"],
            True,
            300,
            lambda r: (
                r["log_metric"]["latest_ok"] or "latest 'loss' value wrong",
                f"{r['log_metric']['loop_s'] / n * 1e6:.1f} µs/call",
            ),
        ),
        (
            "  incl. end of run",
            "calls/s",
            lambda r: n / r["log_metric"]["total_s"],
            True,
            None,
            lambda r: (True, f"{r['log_metric']['total_s'] * 1e3:.0f} ms in all"),
        ),
        (
            f"log_batch {nb}, chunks of {chunk}",
            "values/s",
            lambda r: nb / r["log_batch"]["s"],
            True,
            30,
            None,
        ),
        (
            f"create {cfg['n_runs']} runs",
            "s",
            lambda r: r["search"]["populate_s"],
            False,
            None,
            None,
        ),
        (
            "search metrics.m0 > 0.5",
            "ms",
            lambda r: r["search"]["filter"]["s"] * 1e3,
            False,
            20,
            lambda r: (
                r["search"]["filter"]["count"] == expected
                or f"{r['search']['filter']['count']} runs, expected {expected}",
                f"{r['search']['filter']['count']} runs via {r['search']['filter']['path']}",
            ),
        ),
        (
            "search order by metrics.m1 DESC",
            "ms",
            lambda r: r["search"]["order"]["s"] * 1e3,
            False,
            20,
            lambda r: (
                (
                    r["search"]["order"]["count"] == min(cfg["n_runs"], 1000)
                    or f"{r['search']['order']['count']} runs"
                )
                if r["search"]["order"]["sorted_ok"]
                else "not sorted",
                f"{r['search']['order']['count']} runs via {r['search']['order']['path']}",
            ),
        ),
        ("first use of a new store", "ms", lambda r: r["first_use_s"] * 1e3, False, None, None),
    ]
    rows = []
    for label, unit, fig, higher, target, check in specs:
        fv, mv = val(fig, f), val(fig, m)
        ratio = (fv / mv if higher else mv / fv) if fv and mv else None
        notes, ok = [], True
        for side, res in (("ferryml", f), ("MLflow", m)):
            c = val(check, res) if check else None
            if c:
                ok = ok and c[0] is True
                notes.append(f"{side}: {c[1]}" + ("" if c[0] is True else f" — WRONG: {c[0]}"))
        status = (
            ""
            if target is None
            else "n/a"
            if ratio is None
            else ("PASS" if ratio >= target and ok else "MISS")
        )
        rows.append(
            {
                "workload": label,
                "ferryml": fv,
                "mlflow": mv,
                "unit": unit,
                "ratio": ratio,
                "target": target,
                "status": status,
                "note": "; ".join(notes),
            }
        )
    fi, mi = imp["ferryml"], imp["mlflow"]
    both = isinstance(fi, float) and isinstance(mi, float) and fi > 0
    rows.append(
        {
            "workload": "import",
            "ferryml": fi,
            "mlflow": mi,
            "unit": "ms",
            "ratio": mi / fi if both else None,
            "target": "<150 ms",
            "status": "PASS" if isinstance(fi, float) and fi < 150 else "MISS",
            "note": "absolute target on ferryml; python -c minus python -c pass",
        }
    )
    return rows


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    return "—" if v is None else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL

    mlflow_version = ensure_mlflow()
    log("timing imports ...")
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        f_env = {**os.environ, "FERRY_HOME": tmp}
        m_env = {**os.environ, **MLFLOW_ENV}
        imp = {
            "ferryml": import_ms(FERRY_PY, "ferryml", cfg["import_repeats"], f_env),
            "mlflow": import_ms(MLFLOW_PY, "mlflow", cfg["import_repeats"], m_env),
        }
    log(f"running MLflow {mlflow_version} side ...")
    m = run_worker(MLFLOW_PY, "_mlflow_worker.py", cfg, MLFLOW_ENV)
    log("running ferryml side ...")
    f = run_worker(FERRY_PY, "_ferry_worker.py", cfg, {"FERRY_HOME": "{tmp}"})
    rows = rows_for(f, m, imp, cfg)

    if args.json:
        print(
            json.dumps(
                {
                    "config": cfg,
                    "mlflow_version": mlflow_version,
                    "imports_ms": imp,
                    "ferryml": f,
                    "mlflow": m,
                    "rows": rows,
                },
                indent=2,
            )
        )
        return
    for side, res in (("ferryml", f), ("mlflow", m)):
        if "error" in res:
            print(f"{side} side FAILED: {res['error']}")
    for r in rows:  # one block per workload
        print(
            f"{r['workload'].strip()}: ferryml {fmt(r['ferryml'])}, "
            f"MLflow {fmt(r['mlflow'])} {r['unit']}"
            + (f", ferryml {r['ratio']:.1f}x faster" if r["ratio"] else "")
            + (
                f" (target {r['target']}{'x' if isinstance(r['target'], int) else ''}:"
                f" {r['status']})"
                if r["target"]
                else ""
            )
            + (f" — {r['note']}" if r["note"] else "")
        )
    head = ("workload", "ferryml", "MLflow " + mlflow_version, "unit", "ratio", "target", "result")
    table = [head] + [
        (
            r["workload"],
            fmt(r["ferryml"]),
            fmt(r["mlflow"]),
            r["unit"],
            f"{r['ratio']:.1f}x" if r["ratio"] else "—",
            fmt(r["target"]) + ("x" if isinstance(r["target"], int) else ""),
            r["status"],
        )
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in table) for i in range(len(head))]
    print()
    for i, line in enumerate(table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
