"""ferryml side of benchmarks/pipelines.py, in a fresh interpreter of the repo's venv.

Usage: python _pipeline_worker.py TMPDIR CONFIG_JSON
The steps module (_pipeline_steps.py) is copied to TMPDIR/code, first on the import path, of
Dask's worker processes too (PYTHONPATH). Each workload has its own project folder and store
(TMPDIR/noop, ten, cpu; the store in PROJECT/home). Prints one JSON object per figure on
stdout as soon as it is measured, so a failure part way still leaves the earlier figures;
leaves TMPDIR/ten populated for the driver's fresh-process re-runs.
"""

import importlib.metadata
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
# benchmarks/profile.py would shadow the standard library's profile module (cProfile imports
# it), in Dask's workers too: the steps are imported from a copy instead.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
now = time.perf_counter
out = sys.stdout


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[pipelines] {key}: {value}", file=sys.stderr, flush=True)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t = now()
    value = fn(*args, **kwargs)
    return now() - t, value


def check(result: Any, cache: str, what: str) -> None:
    """A fast wrong answer is no figure: every step finished, all from the cache or none."""
    found = sorted({s.cache for s in result.steps.values()})
    if result.status != "FINISHED" or found != [cache]:
        raise SystemExit(f"{what}: status {result.status}, caches {found}; expected "
                         f"FINISHED, all {cache!r}")  # fmt: skip


def ferry_profile(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """cProfile of one call: own time by library, and ferryml's functions by cumulative
    time (the top 15)."""
    import cProfile  # only now: see the note on sys.path above
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn(*args, **kwargs)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    libraries: dict[str, float] = {}
    rows = []
    for (path, line, func), (_, calls, own, cum, _) in stats.items():
        if "sqlite3" in func:
            library = "sqlite3 (C calls)"
        elif "/site-packages/" in path:
            library = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        elif "/ferryml/" in path:
            library = "ferryml"
        else:
            library = "python (stdlib, builtins)"
        libraries[library] = libraries.get(library, 0.0) + own * 1e3
        if "/ferryml/" in path:
            where = f"{path.split('/ferryml/', 1)[1]}:{line}({func})"
            rows.append({"where": where, "calls": calls, "cum_ms": cum * 1e3})
    rows.sort(key=lambda r: -r["cum_ms"])
    by_library = dict(sorted(libraries.items(), key=lambda kv: -kv[1]))
    return {"total_ms": sum(libraries.values()), "own_ms_by_library": by_library,
            "ferryml_cumulative": rows[:15]}  # fmt: skip


def noop_overhead(ps: Any, tmp: Path, cfg: dict) -> None:
    """1. A pipeline of n no-op steps on the local executor, its run_pipeline wall time
    divided by n. Miss: cache=False (every step runs; its output is still stored). Hit:
    cache=True right after, so every step comes from the cache. Also a one-step pipeline:
    what a run costs besides its steps."""
    from ferryml.config import Settings
    from ferryml.pipelines import run_pipeline

    settings = Settings.resolve(home=tmp / "noop" / "home", cwd=tmp / "noop", environ={})
    n = cfg["noop_steps"]
    first, result = timed(run_pipeline, ps.noop_chain, {"n": n}, cache=False, settings=settings)
    check(result, "off", "first no-op run")
    emit("noop_first_run_s", first)  # creates the store: timed apart
    for name, pipe in (("chain", ps.noop_chain), ("fan", ps.noop_fan)):
        misses, hits, ones = [], [], []
        for _ in range(cfg["noop_repeats"]):
            t, result = timed(run_pipeline, pipe, {"n": n}, cache=False, settings=settings)
            check(result, "off", f"no-op {name}, cache off")
            misses.append(t / n)
            t, result = timed(run_pipeline, pipe, {"n": n}, cache=True, settings=settings)
            check(result, "hit", f"no-op {name}, re-run")
            hits.append(t / n)
            t, result = timed(run_pipeline, pipe, {"n": 1}, cache=True, settings=settings)
            check(result, "hit", f"one no-op step {name}")
            ones.append(t)
        emit(f"noop_{name}", {"miss_s": misses, "hit_s": hits, "one_step_hit_s": ones, "n": n})
        if name == "chain" and (median(hits) > cfg["profile_over_s"] or cfg["profile"]):
            emit("hit_profile", ferry_profile(run_pipeline, pipe, {"n": n}, settings=settings))


def ten_steps(ps: Any, tmp: Path, cfg: dict) -> None:
    """3. A 10-step pipeline run again with nothing changed (warm: this process has run it
    before), and the same ten functions as a plain Python loop."""
    from ferryml.config import Settings
    from ferryml.pipelines import run_pipeline

    settings = Settings.resolve(home=tmp / "ten" / "home", cwd=tmp / "ten", environ={})
    t, result = timed(run_pipeline, ps.ten_steps, settings=settings)
    check(result, "miss", "10-step pipeline, first run")
    emit("ten_first_s", t)
    reruns = []
    for _ in range(cfg["ten_repeats"]):
        t, result = timed(run_pipeline, ps.ten_steps, settings=settings)
        check(result, "hit", "10-step pipeline, re-run")
        reruns.append(t)
    if result.output() != ps.ten_plain():
        raise SystemExit(f"10-step pipeline gave {result.output()!r}, not {ps.ten_plain()!r}")
    emit("ten_rerun_s", reruns)
    loops = 200
    t, _ = timed(lambda: [ps.ten_plain() for _ in range(loops)])
    emit("ten_plain_s", t / loops)


def cpu_bound(ps: Any, tmp: Path, cfg: dict) -> None:
    """2. n independent CPU-bound steps: in this process one after another; on a pool of
    worker processes; on Dask, a LocalCluster that ferryml starts and stops for the run; and
    on a DaskExecutor started beforehand (its start-up, first use and close timed apart);
    and without ferryml, the machine's ceiling. Rounds take turns going first; cache off, so
    every step runs."""
    from ferryml.config import Settings
    from ferryml.pipelines import run_pipeline
    from ferryml.pipelines.executors import DaskExecutor

    settings = Settings.resolve(home=tmp / "cpu" / "home", cwd=tmp / "cpu", environ={})
    params = {"n": cfg["cpu_steps"], "seconds": cfg["cpu_seconds"]}
    w = cfg["workers"]

    def run(executor: Any, workers: int | None = None) -> dict:
        t, result = timed(run_pipeline, ps.cpu_fan, params, executor=executor, workers=workers,
                          cache=False, settings=settings)  # fmt: skip
        check(result, "off", f"CPU-bound steps on {executor}")
        # Most steps running at once, from the steps' own start and end clocks.
        spans = result.output()
        edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
        running = peak = 0
        for _, d in edges:
            running += d
            peak = max(peak, running)
        steps = sum(s.duration for s in result.steps.values())
        return {"s": t, "steps_s": steps, "peak_parallel": peak}

    def prestarted() -> dict:
        made, dask = timed(DaskExecutor, workers=w)
        try:
            warm, result = timed(run_pipeline, ps.noop_chain, {"n": 1}, executor=dask,
                                 cache=False, settings=settings)  # fmt: skip
            check(result, "off", "first use of a started Dask executor")
            figures = run(dask)
        finally:
            closed, _ = timed(dask.close)
        return {**figures, "start_s": made, "first_use_s": warm, "close_s": closed}

    def plain() -> dict:
        """The machine's ceiling, without ferryml: the steps' function called in a loop, and
        mapped over a fresh pool of as many forked processes (fewer steps: a ratio only)."""
        import concurrent.futures as cf
        import multiprocessing

        k, secs = cfg["ceiling_steps"], cfg["cpu_seconds"]
        loop, _ = timed(lambda: [ps.burn(i, secs) for i in range(k)])

        def pooled() -> None:
            context = multiprocessing.get_context("fork")
            with cf.ProcessPoolExecutor(w, mp_context=context) as pool:
                list(pool.map(ps.burn, range(k), [secs] * k))

        in_pool, _ = timed(pooled)
        return {"steps": k, "loop_s": loop, "pool_s": in_pool}

    kinds = {"local": lambda: run("local"), "process": lambda: run("process", w),
             "dask": lambda: run("dask", w), "dask_prestarted": prestarted,
             "plain": plain}  # fmt: skip
    order = list(kinds)
    for i in range(cfg["cpu_rounds"]):
        for kind in order[i % len(order) :] + order[: i % len(order)]:
            emit(f"cpu_{kind}", kinds[kind]())


def main() -> None:
    tmp, cfg = Path(sys.argv[1]), json.loads(sys.argv[2])
    sys.stdout = sys.stderr  # stray prints must not corrupt the JSON on `out`
    code = tmp / "code"
    code.mkdir()
    shutil.copy(HERE / "_pipeline_steps.py", code)
    sys.path.insert(0, str(code))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(code), os.environ.get("PYTHONPATH")) if p
    )
    emit("version", importlib.metadata.version("ferryml"))
    emit("loadavg_start", os.getloadavg())
    import _pipeline_steps as ps

    noop_overhead(ps, tmp, cfg)
    ten_steps(ps, tmp, cfg)
    cpu_bound(ps, tmp, cfg)
    emit("loadavg_end", os.getloadavg())


# Dask's worker processes start by importing this module again (as __mp_main__): only
# measure when run as a script.
if __name__ == "__main__":
    main()
