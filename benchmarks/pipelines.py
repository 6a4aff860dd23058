"""Pipelines benchmark: what ferryml's pipeline runner costs, against its targets.

    python benchmarks/pipelines.py [--quick] [--json] [--profile]

Workloads (steps in benchmarks/_pipeline_steps.py):
1. A no-op step's overhead on the local executor: a pipeline of 20 no-op steps (a chain, and
   20 independent ones), its run_pipeline time divided by 20; cache off (every step runs) and
   cache hits (the same run again). Target: a hit under 20 ms a step. A hit path over 10 ms
   a step (or --profile) is profiled with cProfile, and where its time goes is printed.
2. 16 independent CPU-bound steps of 1 s of CPU each: one after another (local), on two
   worker processes (process), on Dask (a LocalCluster ferryml starts for the run, and one
   started beforehand, its start-up timed apart). Target: two workers at least 1.7x faster
   than one after another. Rounds take turns going first; the figure is their median. Also
   shown, the machine's own ceiling: the same function in a plain loop and in a pool of two
   forked processes, without ferryml (on a shared or busy machine it is below 2x); and per
   executor the wall time minus the steps' own time spread over the workers: ferryml's
   share (start-up, scheduling, storing outputs), which other load on the machine affects
   less than it does the speed-up.
3. A 10-step pipeline run again with nothing changed, all hits: the run_pipeline call in a
   process that ran it before (warm), and in a fresh `python -c` (pays ferryml's imports).
   Target: under 0.5 s. Also shown: `ferry pipeline run` of it as a whole process, and the
   same ten functions as a plain Python loop (the floor).

The measurements run in a fresh interpreter of the repo's venv (_pipeline_worker.py), every
store in one temp folder, removed at the end, also on failure. Fresh interpreters keep their
bytecode in benchmarks/.cache/pycache (PYTHONPYCACHEPREFIX), also where the environment sets
PYTHONDONTWRITEBYTECODE, so a fresh process pays imports as a normal install does, not the
compiling of ferryml's source. Stdlib only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable  # this script runs from the repo's .venv
FERRY = str(Path(sys.executable).parent / "ferry")
PYCACHE = HERE / ".cache" / "pycache"
FULL = {"noop_steps": 20, "noop_repeats": 5, "ten_repeats": 5, "fresh_repeats": 3,
        "cpu_steps": 16, "cpu_seconds": 1.0, "workers": 2, "cpu_rounds": 2,
        "ceiling_steps": 4}  # fmt: skip
QUICK = {"noop_steps": 10, "noop_repeats": 3, "ten_repeats": 3, "fresh_repeats": 1,
         "cpu_steps": 4, "cpu_seconds": 0.25, "workers": 2, "cpu_rounds": 1,
         "ceiling_steps": 4}  # fmt: skip
HIT_TARGET_MS = 20  # a no-op step from the cache, per step
PROFILE_OVER_MS = 10  # profile the hit path when a hit costs more
SPEEDUP_TARGET = 1.7  # two workers against one after another
RERUN_TARGET_S = 0.5  # the 10-step pipeline, all hits
WARM_UP = (
    "import ferryml, ferryml.pipelines.engine, ferryml.pipelines.executors, ferryml.cli, "
    "ferryml.tracking.fluent, ferryml.store.sql, ferryml.store.sql_pipelines, distributed"
)
# A fresh interpreter runs the 10-step pipeline again: imports, then the run_pipeline call.
FRESH = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from ferryml.config import Settings
from ferryml.pipelines import run_pipeline
import _pipeline_steps as ps
settings = Settings.resolve(home=sys.argv[2] + "/home", cwd=sys.argv[2], environ={})
t1 = time.perf_counter()
result = run_pipeline(ps.ten_steps, settings=settings)
t2 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "run_s": t2 - t1, "status": result.status,
                  "caches": sorted({s.cache for s in result.steps.values()})}))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fresh_env(tmp: Path, bytecode: bool = True) -> dict[str, str]:
    env = {**os.environ, "FERRY_HOME": str(tmp / "home")}
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_worker(tmp: Path, cfg: dict) -> dict[str, list[Any]]:
    """Run the measurements in a fresh interpreter; every JSON line it prints, by key (a key
    printed again, as by each round of a workload, adds to its list). A worker that fails
    part way still gives the figures it printed before failing."""
    res: dict[str, list[Any]] = collections.defaultdict(list)
    p = subprocess.Popen(
        [PY, str(HERE / "_pipeline_worker.py"), str(tmp), json.dumps(cfg)],
        cwd=tmp, env=fresh_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout and p.stderr
    tail: collections.deque[str] = collections.deque(maxlen=30)
    try:
        for line in p.stderr:  # echo the worker's progress, keep the rest in case it fails
            tail.append(line)
            if line.startswith("[pipelines] ") and "hit_profile" not in line:
                sys.stderr.write(line)
        for line in p.stdout:  # small, so reading it after stderr cannot deadlock
            for key, value in json.loads(line).items():
                res[key].append(value)
    finally:  # stopped early (SIGTERM): stop the worker before its folder goes
        if p.poll() is None:
            p.terminate()
    if p.wait() != 0:
        err = "".join(tail).strip()
        log(f"_pipeline_worker.py failed (exit {p.returncode}):\n{err}")
        res["error"].append(err.splitlines()[-1] if err else f"exit {p.returncode}")
    return dict(res)


def fresh_reruns(tmp: Path, repeats: int, bytecode: bool = True) -> dict[str, Any]:
    """The 10-step pipeline again in fresh interpreters (after one not counted, which
    writes the bytecode): the run_pipeline call, the imports before it, the whole process."""
    env = fresh_env(tmp, bytecode)
    cmd = [PY, "-c", FRESH, str(tmp / "code"), str(tmp / "ten")]
    runs = []
    for i in range(repeats + (1 if bytecode else 0)):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
        got = json.loads(p.stdout.strip().splitlines()[-1])
        if got["status"] != "FINISHED" or got["caches"] != ["hit"]:
            return {"error": f"fresh re-run: status {got['status']}, caches {got['caches']}"}
        if i > 0 or not bytecode:
            runs.append({**got, "process_s": wall})
    return {k: [r[k] for r in runs] for k in ("run_s", "imports_s", "process_s")}


def cli_reruns(tmp: Path, repeats: int) -> dict[str, Any]:
    """`ferry pipeline run _pipeline_steps:ten_steps` from the folder holding the module, as
    a user runs it: the whole process, timed from outside."""
    cmd = [FERRY, "--home", str(tmp / "ten" / "home"), "pipeline", "run",
           "_pipeline_steps:ten_steps", "--json"]  # fmt: skip
    times = []
    for i in range(repeats + 1):  # the first, not counted, writes the bytecode
        t = time.perf_counter()
        p = subprocess.run(cmd, env=fresh_env(tmp), cwd=tmp / "code", capture_output=True,
                           text=True, check=False)  # fmt: skip
        wall = time.perf_counter() - t
        if p.returncode != 0:
            return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
        doc = json.loads(p.stdout)
        found = sorted({s["cache"] for s in doc["steps"].values()})
        if doc["status"] != "FINISHED" or found != ["hit"]:
            return {"error": f"`ferry pipeline run`: status {doc['status']}, caches {found}"}
        if i > 0:
            times.append(wall)
    return {"process_s": times}


# -- report ------------------------------------------------------------------------------


def med(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def first(res: dict, key: str) -> Any:
    return res[key][0] if res.get(key) else None


def rows_for(res: dict, cfg: dict) -> list[dict]:
    rows: list[dict] = []

    def row(key: str, label: str, value: float | None, unit: str, target: str = "",
            ok: bool | None = None, samples: list[float] | None = None,
            note: str = "") -> None:  # fmt: skip
        status = "" if not target else "n/a" if value is None else "PASS" if ok else "MISS"
        rows.append({"key": key, "workload": label, "value": value, "unit": unit,
                     "target": target, "status": status, "samples": samples or [],
                     "note": note})  # fmt: skip

    n = cfg["noop_steps"]
    for shape, what in (("chain", f"chain of {n}"), ("fan", f"{n} independent")):
        got = first(res, f"noop_{shape}") or {}
        miss, hit, one = ([v * 1e3 for v in got.get(k, [])] for k in
                          ("miss_s", "hit_s", "one_step_hit_s"))  # fmt: skip
        row(f"noop_miss_{shape}", f"no-op step, cache off ({what})", med(miss), "ms/step",
            samples=miss)  # fmt: skip
        note = ""
        if hit and one:  # what a run costs besides its steps, and each step past the first
            step = (med(hit) * n - med(one)) / (n - 1)
            note = f"a 1-step run {med(one):.0f} ms; each further step {step:.1f} ms"
        value = med(hit)
        row(f"noop_hit_{shape}", f"no-op step, cache hit ({what})", value, "ms/step",
            f"<{HIT_TARGET_MS} ms", value is not None and value < HIT_TARGET_MS, hit,
            note)  # fmt: skip

    steps, secs = cfg["cpu_steps"], cfg["cpu_seconds"]
    local = med([r["s"] for r in res.get("cpu_local", [])])
    w = cfg["workers"]
    labels = {"local": "one after another (local)",
              "process": f"{w} worker processes (process)",
              "dask": f"Dask, {w} workers, cluster started for the run",
              "dask_prestarted": f"Dask, {w} workers, executor started before"}  # fmt: skip
    for kind, label in labels.items():
        got = res.get(f"cpu_{kind}", [])
        times = [r["s"] for r in got]
        value = med(times)
        notes = []
        if got:  # with the steps' time spread over the workers, the rest is ferryml's
            busy = med([r["steps_s"] for r in got])
            rest = med([r["s"] - r["steps_s"] / (1 if kind == "local" else w) for r in got])
            notes.append(f"steps busy {busy:.1f} s in all, at most "
                         f"{max(r['peak_parallel'] for r in got)} at once; wall minus their "
                         f"time per worker {rest:.2f} s")  # fmt: skip
        if kind == "dask_prestarted" and got:
            notes.append(
                f"start-up {med([r['start_s'] for r in got]):.2f} s, first use (1 step) "
                f"{med([r['first_use_s'] for r in got]):.2f} s, close "
                f"{med([r['close_s'] for r in got]):.2f} s, not counted"
            )
        if kind == "local":
            row(f"cpu_{kind}", f"{steps} CPU-bound steps of {secs:g} s, {label}", value, "s",
                samples=times, note="; ".join(notes))  # fmt: skip
            continue
        speedup = local / value if local and value else None
        if speedup:
            notes.insert(0, f"{speedup:.2f}x faster than one after another")
        row(f"cpu_{kind}", f"  same, {label}", value, "s", f">={SPEEDUP_TARGET}x faster",
            speedup is not None and speedup >= SPEEDUP_TARGET, times,
            "; ".join(notes))  # fmt: skip
    ceiling = res.get("cpu_plain", [])
    ratios = [r["loop_s"] / r["pool_s"] for r in ceiling]
    note = ""
    if ceiling:
        note = (f"{ceiling[0]['steps']} steps: a loop {med([r['loop_s'] for r in ceiling]):.2f} s, "
                f"a pool {med([r['pool_s'] for r in ceiling]):.2f} s")  # fmt: skip
        if med(ratios) < SPEEDUP_TARGET:
            note += (f"; BUSY MACHINE: under {SPEEDUP_TARGET}x even without ferryml, so the "
                     "speed-ups above measure the load, not ferryml")  # fmt: skip
    row("cpu_ceiling", f"  ceiling without ferryml: a pool of {cfg['workers']} forked "
        "processes against a loop", med(ratios), "x faster", samples=ratios, note=note)  # fmt: skip

    warm = res.get("ten_rerun_s", [None])[0]
    value = med(warm)
    first_run = first(res, "ten_first_s")
    plain = first(res, "ten_plain_s")
    note = f"first run (all misses) {first_run:.2f} s" if first_run else ""
    row("ten_warm", "10-step re-run, all hits, run_pipeline (warm)", value, "s",
        f"<{RERUN_TARGET_S} s", value is not None and value < RERUN_TARGET_S, warm,
        note)  # fmt: skip
    fresh = first(res, "ten_fresh") or {}
    value = med(fresh.get("run_s"))
    note = fresh.get("error", "")
    if value is not None:
        note = (f"imports before it {med(fresh['imports_s']):.2f} s; whole process "
                f"{med(fresh['process_s']):.2f} s")  # fmt: skip
    row("ten_fresh", "  same, run_pipeline in a fresh python -c", value, "s",
        f"<{RERUN_TARGET_S} s", value is not None and value < RERUN_TARGET_S,
        fresh.get("run_s"), note)  # fmt: skip
    nopyc = first(res, "ten_fresh_nopyc")
    if nopyc:
        value = med(nopyc.get("run_s"))
        note = (f"whole process {med(nopyc['process_s']):.2f} s; ferryml's source compiled "
                "in every process" if value is not None else nopyc.get("error", ""))  # fmt: skip
        row("ten_fresh_nopyc", "  same, fresh, PYTHONDONTWRITEBYTECODE as inherited", value,
            "s", samples=nopyc.get("run_s"), note=note)  # fmt: skip
    cli = first(res, "ten_cli") or {}
    row("ten_cli", "  same, `ferry pipeline run` (whole process)", med(cli.get("process_s")),
        "s", samples=cli.get("process_s"), note=cli.get("error", ""))  # fmt: skip
    row("ten_plain", "  same ten functions, plain Python loop (floor)",
        plain * 1e3 if plain is not None else None, "ms")  # fmt: skip
    return rows


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.3f}" if abs(v) < 1 else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    hint = f"profile the cache-hit path even under {PROFILE_OVER_MS} ms a step"
    ap.add_argument("--profile", action="store_true", help=hint)
    args = ap.parse_args()
    cfg = {**(QUICK if args.quick else FULL), "profile": args.profile,
           "profile_over_s": PROFILE_OVER_MS / 1e3}  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the temp folder too
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="ferry-bench-pipelines-") as tmp_:
        tmp = Path(tmp_)
        log("warming up the bytecode cache ...")
        subprocess.run([PY, "-c", WARM_UP], env=fresh_env(tmp), check=True)
        log("measuring in a fresh interpreter ...")
        res = run_worker(tmp, cfg)
        if (tmp / "ten" / "home").is_dir():
            log("re-running the 10-step pipeline in fresh interpreters ...")
            res["ten_fresh"] = [fresh_reruns(tmp, cfg["fresh_repeats"])]
            if os.environ.get("PYTHONDONTWRITEBYTECODE"):
                res["ten_fresh_nopyc"] = [fresh_reruns(tmp, 1, bytecode=False)]
            res["ten_cli"] = [cli_reruns(tmp, cfg["fresh_repeats"])]
    rows = rows_for(res, cfg)
    total = time.perf_counter() - started

    if args.json:
        print(json.dumps({"config": cfg, "results": res, "rows": rows, "total_s": total},
                         indent=2))  # fmt: skip
        return
    load = [first(res, "loadavg_start"), first(res, "loadavg_end")]
    print(f"ferryml {first(res, 'version') or '?'} pipelines; {os.cpu_count()} CPUs; load "
          f"average at start/end {' / '.join(f'{x[0]:.1f}' for x in load if x)}; "
          f"counts: {cfg}")  # fmt: skip
    if res.get("error"):
        print(f"worker FAILED: {res['error'][0]}")
    for r in rows:
        line = f"{r['workload'].strip()}: {fmt(r['value'])} {r['unit']}"
        if r["target"]:
            line += f" (target {r['target']}: {r['status']})"
        if len(r["samples"]) > 1:
            line += " — runs [" + ", ".join(fmt(v) for v in r["samples"]) + "]"
        print(line + (f"; {r['note']}" if r["note"] else ""))
    profile = first(res, "hit_profile")
    if profile:
        print(f"\nWhere a cache-hit run of the {cfg['noop_steps']}-step chain spends its "
              f"time (cProfile, {profile['total_ms']:.0f} ms with its overhead):")  # fmt: skip
        print("  own time by library: " + ", ".join(
            f"{lib} {ms:.0f} ms" for lib, ms in profile["own_ms_by_library"].items() if ms >= 1
        ))  # fmt: skip
        print("  ferryml's functions, cumulative:")
        for p in profile["ferryml_cumulative"]:
            print(f"  {p['cum_ms']:8.1f} ms {p['calls']:5d}x {p['where']}")
    table: list[tuple[str, ...]] = [("workload", "figure", "unit", "target", "result")]
    for r in rows:
        table.append((r["workload"], fmt(r["value"]), r["unit"], r["target"], r["status"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    table.insert(1, tuple("-" * w for w in widths))
    print()
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    print(f"\n(benchmark took {total:.0f} s)")


if __name__ == "__main__":
    main()
