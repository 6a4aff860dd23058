"""Registry benchmark: ferryml against MLflow logging, registering and loading a model.

    python benchmarks/registry.py [--quick] [--json] [--profile] [--model logreg|forest]

Workloads, the same scikit-learn model on both sides (LogisticRegression on scikit-learn's
breast-cancer data, or with --model forest a RandomForest of 50 trees), SQLite stores:
1. log_model + register, with an input example (both infer a signature), inside a run that
   is already started; the call only is timed. The first call of the process (it pays lazy
   imports) is shown apart from the median of the next ones, each in a new run. By
   default MLflow also infers the model's requirements (a child Python that loads the
   model), which ferryml, pinning the flavor's library, never does; so the target (ferryml
   at least 10x faster) is on the row where MLflow is given pip_requirements and skips it.
2. load_model("models:/bench@champion") (the alias set on version 1; ferryml checks every
   file's digest first), each load process a fresh interpreter: `import` timed apart, the
   first load (cold: pays the imports loading needs), then the median of warm repeats.
   Target: ferryml no slower. Both loaded models must predict what the fitted model does.
If ferryml's log_model + register takes over 0.3 s or a warm load over 0.05 s (or with
--profile), the call is profiled with cProfile and where its time goes is printed.

MLflow runs in its own venv (benchmarks/.cache/mlflow-venv, made on first use as by
tracking.py, with scikit-learn checked). Each side gets a fresh temp folder: the log process
fills it, the load processes read it. Fresh interpreters keep their bytecode in
benchmarks/.cache/pycache (PYTHONPYCACHEPREFIX, also where the environment sets
PYTHONDONTWRITEBYTECODE), and a warm-up pass of each side, not counted, writes it first, so
first calls and cold loads pay imports as a normal install does, not compiling. Stdlib only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tracking import FERRY_PY, HERE, MLFLOW_ENV, MLFLOW_PY, ensure_mlflow, log

PYCACHE = HERE / ".cache" / "pycache"
FULL = {"log_repeats": 5, "pinned_repeats": 3, "load_repeats": 5, "load_processes": 3}
QUICK = {"log_repeats": 2, "pinned_repeats": 1, "load_repeats": 2, "load_processes": 1}
LOG_TARGET = 10  # ferryml this many times faster
LOAD_TARGET = 1  # ferryml no slower
PROFILE_LOG_OVER_S = 0.3
PROFILE_LOAD_OVER_S = 0.05
# The floor of a cold load: a fresh interpreter of the side's venv unpickles the same model
# (which imports scikit-learn), with no registry, no checks, no pandas.
FLOOR = """
import pickle, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    pickle.load(f)
print(time.perf_counter() - t)
"""
SIDES = {  # name: interpreter, worker, environment ({tmp}: the side's temp folder)
    "ferryml": (FERRY_PY, "_registry_ferry_worker.py", {"FERRY_HOME": "{tmp}"}),
    "MLflow": (MLFLOW_PY, "_registry_mlflow_worker.py", MLFLOW_ENV),
}
# key, label, target: ferryml this many times faster (None: shown only)
ROWS = [
    ("log_first", "log_model + register, first call of the process", None),
    ("log", "log_model + register, median of the next calls", None),
    # the row that compares the same work: neither side infers the requirements
    ("log_pinned", "  same, MLflow given pip_requirements (no inference)", LOG_TARGET),
    ("alias", "set the alias (first call)", None),
    ("first_use", "first use of a new store", None),
    ("import", "import, in a load process", None),
    ("load_cold", "load_model by alias, first in a fresh process", LOAD_TARGET),
    ("import_load", "  import + first load", None),
    ("floor", "  floor: a fresh python unpickling the model", None),
    ("load_warm", "load_model by alias, warm (median)", LOAD_TARGET),
]


def ensure_sklearn() -> None:
    """MLflow depends on scikit-learn; make sure its venv has it, as the workload needs."""
    check = [MLFLOW_PY, "-c", "import sklearn"]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        log("pip install scikit-learn (into the MLflow venv)")
        pip = [MLFLOW_PY, "-m", "pip", "install", "--quiet", "scikit-learn"]
        subprocess.run(pip, check=True, stdout=sys.stderr)


def fresh_env(side: str, tmp: str) -> dict[str, str]:
    env = {**os.environ, **{k: v.format(tmp=tmp) for k, v in SIDES[side][2].items()}}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_worker(side: str, tmp: str, cfg: dict) -> dict[str, Any]:
    """One process of one side on its temp folder; the JSON lines it prints, merged. A worker
    that fails part way still gives the figures it printed before failing."""
    py, script, _ = SIDES[side]
    res: dict[str, Any] = {}
    p = subprocess.Popen(
        [py, str(HERE / script), tmp, json.dumps(cfg)], cwd=tmp, env=fresh_env(side, tmp),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout and p.stderr
    tail: collections.deque[str] = collections.deque(maxlen=20)
    for line in p.stderr:  # echo the worker's progress, keep the rest in case it fails
        tail.append(line)
        if line.startswith(("[ferryml] ", "[mlflow] ")) and "predictions" not in line:
            sys.stderr.write(line)
    for line in p.stdout:  # small, so reading it after stderr cannot deadlock
        res.update(json.loads(line))
    if p.wait() != 0:
        err = "".join(tail).strip()
        log(f"{script} ({cfg['phase']}) failed (exit {p.returncode}):\n{err}")
        res["error"] = err.splitlines()[-1] if err else f"exit {p.returncode}"
    return res


def measure(side: str, cfg: dict) -> dict[str, Any]:
    """The log process, then the load processes, on one fresh temp folder."""
    with tempfile.TemporaryDirectory(prefix="ferry-bench-registry-") as tmp:
        res = run_worker(side, tmp, {**cfg, "phase": "log"})
        res["loads"] = []
        if "error" not in res:
            for i in range(cfg["load_processes"]):
                got = run_worker(side, tmp, {**cfg, "phase": "load", "process": i})
                res["loads"].append(got)
                if "error" in got:
                    break
            res["floor_s"] = floor(side, tmp, cfg["load_processes"])
    return res


def floor(side: str, tmp: str, repeats: int) -> list[float]:
    """FLOOR in fresh interpreters, on the model the log process pickled."""
    cmd = [SIDES[side][0], "-c", FLOOR, str(Path(tmp, "model.pkl"))]
    times = []
    for _ in range(repeats):
        p = subprocess.run(cmd, env=fresh_env(side, tmp), cwd=tmp, capture_output=True,
                           text=True, check=False)  # fmt: skip
        if p.returncode != 0:
            log(f"floor ({side}) failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
            return []
        times.append(float(p.stdout))
    return times


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def figures(res: dict) -> dict[str, float]:
    """One side's figure per row key, in ms; keys missing where that side failed."""
    loads = [r for r in res.get("loads", []) if "load_cold_s" in r]
    values = {
        "log_first": res.get("log_first_s"),
        "log": res.get("log_s", {}).get("median"),
        "log_pinned": res.get("log_pinned_s", {}).get("median"),
        "alias": res.get("alias_s"),
        "first_use": res.get("first_use_s"),
        "import": med([r["import_s"] for r in loads]),
        "load_cold": med([r["load_cold_s"] for r in loads]),
        "import_load": med([r["import_s"] + r["load_cold_s"] for r in loads]),
        "load_warm": med([s for r in loads for s in r.get("load_warm_s", [])]),
        "floor": med(res.get("floor_s", [])),
    }
    return {k: v * 1e3 for k, v in values.items() if v is not None}


def problems(res: dict, cfg: dict) -> dict[str, str]:
    """Wrong answers, by row key: a fast wrong answer is no PASS."""
    found = {}
    check = res.get("log_check")
    if check:
        expected = list(range(1, cfg["log_repeats"] + 2))
        if check["versions"] != expected:
            found["log"] = f"registered versions {check['versions']}, expected {expected}"
        elif not check["signatures"]:
            found["log"] = "no signature inferred from the input example"
    truth = res.get("model_predictions")
    for r in res.get("loads", []):
        if "loaded_predictions" in r and r["loaded_predictions"] != truth:
            wrong = sum(a != b for a, b in zip(r["loaded_predictions"], truth or [], strict=False))
            found["load_cold"] = f"loaded model predicts differently ({wrong} rows)"
        elif r.get("loaded_version") not in (None, 1):
            found["load_cold"] = f"alias resolved to version {r['loaded_version']}, not 1"
    if "load_cold" in found:
        found["load_warm"] = found["load_cold"]
    return found


def report(f: dict, m: dict, cfg: dict) -> list[dict]:
    ff, mf = figures(f), figures(m)
    fp, mp = problems(f, cfg), problems(m, cfg)
    heads = [r.get("head_predictions") for r in (*f.get("loads", [])[:1], *m.get("loads", [])[:1])]
    rows = []
    for key, label, target in ROWS:
        fv, mv = ff.get(key), mf.get(key)
        if key == "log_pinned":
            fv = ff.get("log")  # ferryml's own figure, against MLflow without the inference
        ratio = mv / fv if fv and mv and key != "floor" else None  # the floor is no race
        notes = []
        ok = ratio is not None and target is not None and ratio >= target
        shown = f">={target}x" if target else ""
        if key == "log_pinned" and fv:
            notes.append("ferryml's figure is the row above's")
        if key == "floor":
            above = [f"{side} +{got['import_load'] - got['floor']:,.0f} ms"
                     for side, got in (("ferryml", ff), ("MLflow", mf))
                     if "import_load" in got and "floor" in got]  # fmt: skip
            if above:
                notes.append("import + first load above it: " + ", ".join(above))
        if key == "load_warm":
            ranges = []
            for side, res in (("ferryml", f), ("MLflow", m)):
                runs = [s * 1e3 for r in res.get("loads", []) for s in r.get("load_warm_s", [])]
                if runs:
                    ranges.append(f"{side} {min(runs):.1f}–{max(runs):.1f} ms")
            if ranges:
                notes.append(", ".join(ranges) + f" ({cfg['load_repeats']} loads in each of "
                             f"{cfg['load_processes']} processes)")  # fmt: skip
        if key == "load_cold" and len(heads) == 2:
            same = "same" if heads[0] == heads[1] else "DIFFERENT"
            notes.append(f"predict(X[:5]): ferryml {heads[0]}, MLflow {heads[1]} ({same})")
            if heads[0] != heads[1]:
                ok = False
        for side, probs in (("ferryml", fp), ("MLflow", mp)):
            if key in probs:
                ok = False
                notes.append(f"{side} WRONG: {probs[key]}")
        status = "" if not shown else "n/a" if ratio is None else "PASS" if ok else "MISS"
        rows.append({"key": key, "workload": label, "unit": "ms", "ferryml": fv, "mlflow": mv,
                     "ratio": ratio, "target": shown, "status": status,
                     "note": "; ".join(notes)})  # fmt: skip
    return rows


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def print_profiles(f: dict) -> None:
    for profile in [f.get("profile"), *(r.get("profile") for r in f.get("loads", []))]:
        if not profile:
            continue
        print(f"\nWhere ferryml's {profile['what']} spends its time (cProfile, "
              f"{profile['total_ms']:.0f} ms with its overhead):")  # fmt: skip
        print("  own time by library: " + ", ".join(
            f"{lib} {ms:.1f} ms" for lib, ms in profile["own_ms_by_library"].items() if ms >= 0.5
        ))  # fmt: skip
        print("  ferryml's functions, cumulative:")
        for p in profile["ferryml_cumulative"]:
            print(f"  {p['cum_ms']:8.1f} ms {p['calls']:5d}x {p['where']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--profile", action="store_true", help="profile ferryml's calls always")
    ap.add_argument("--model", choices=("logreg", "forest"), default="logreg",
                    help="LogisticRegression (default) or a RandomForest of 50 trees")  # fmt: skip
    args = ap.parse_args()
    cfg = {**(QUICK if args.quick else FULL), "model": args.model, "profile": args.profile,
           "log_profile_over_s": PROFILE_LOG_OVER_S,
           "load_profile_over_s": PROFILE_LOAD_OVER_S}  # fmt: skip
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    version = ensure_mlflow()
    ensure_sklearn()
    for side in SIDES:  # one short pass each, not counted: writes the bytecode
        log(f"warming up the {side} side (not counted) ...")
        warm = {**cfg, "log_repeats": 0, "pinned_repeats": 0, "load_repeats": 0,
                "load_processes": 1, "profile": False}  # fmt: skip
        got = measure(side, warm)
        if "error" in got or any("error" in r for r in got["loads"]):
            log(f"warning: the {side} warm-up failed; its figures below may pay compiling")
    results = {}
    for side in ("MLflow", "ferryml"):
        log(f"running the {side} side ...")
        results[side] = measure(side, cfg)
    f, m = results["ferryml"], results["MLflow"]
    rows = report(f, m, cfg)
    total = time.perf_counter() - started
    loadavg = (load_start, os.getloadavg()[0])

    if args.json:
        doc = {"config": cfg, "mlflow_version": version, "ferryml": f, "mlflow": m,
               "rows": rows, "loadavg": loadavg, "total_s": total}  # fmt: skip
        print(json.dumps(doc, indent=2))
        return
    print(f"ferryml {f.get('version', '?')} vs MLflow {version} (own venv); model {args.model}; "
          f"{os.cpu_count()} CPUs, load average at start/end {loadavg[0]:.1f} / "
          f"{loadavg[1]:.1f}; counts: { {k: cfg[k] for k in FULL} }")  # fmt: skip
    for side, res in (("ferryml", f), ("MLflow", m)):
        errors = [res.get("error"), *(r.get("error") for r in res.get("loads", []))]
        for err in filter(None, errors):
            print(f"{side} side FAILED: {err}")
    for r in rows:  # one line per workload
        line = f"{r['workload'].strip()}: ferryml {fmt(r['ferryml'])} ms, "
        line += f"MLflow {fmt(r['mlflow'])} ms"
        if r["ratio"]:
            r_ = r["ratio"]
            line += f"; ferryml {r_:.1f}x faster" if r_ >= 1 else f"; ferryml {1 / r_:.1f}x SLOWER"
        if r["target"]:
            line += f" (target {r['target']}: {r['status']})"
        print(line + (f" — {r['note']}" if r["note"] else ""))
    print_profiles(f)
    table: list[tuple[str, ...]] = [
        ("workload", "ferryml", "MLflow", "unit", "ratio", "target", "result")
    ]
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "—"
        cells = (fmt(r["ferryml"]), fmt(r["mlflow"]), r["unit"], ratio, r["target"], r["status"])
        table.append((r["workload"], *cells))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    table.insert(1, tuple("-" * w for w in widths))
    print()
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    print(f"\n(benchmark took {total:.0f} s)")


if __name__ == "__main__":
    main()
