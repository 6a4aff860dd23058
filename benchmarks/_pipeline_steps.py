"""Pipelines that benchmarks/pipelines.py runs (a module, so worker processes can import the
steps). Stdlib only, so the steps' own work stays negligible next to ferryml's.

The benchmark copies this file into each temp project folder and imports it from there, as a
user's project module would be (the benchmarks folder itself holds a `profile.py` that would
shadow the standard library's for anything that imports `cProfile`).
"""

from __future__ import annotations

import time

from ferryml.pipelines import pipeline, step

# -- 1. no-op steps --------------------------------------------------------------------------


@step
def nothing(i: int) -> int:
    return i


@step
def pass_on(value: int) -> int:
    return value


@pipeline
def noop_chain(n: int = 20):
    """``n`` no-op steps, each taking the previous one's output."""
    out = nothing(0)
    for _ in range(n - 1):
        out = pass_on(out)
    return out


@pipeline
def noop_fan(n: int = 20):
    """``n`` independent no-op steps."""
    return tuple(nothing(i) for i in range(n))


# -- 2. CPU-bound steps ----------------------------------------------------------------------


@step
def burn(i: int, seconds: float = 1.0) -> list[float]:
    """Burns ``seconds`` of this process's CPU time; returns its start and end (wall clock)."""
    started = time.time()
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass
    return [started, time.time()]


@pipeline
def cpu_fan(n: int = 16, seconds: float = 1.0):
    """``n`` independent CPU-bound steps of ``seconds`` each."""
    return tuple(burn(i, seconds) for i in range(n))


# -- 3. a small 10-step pipeline -------------------------------------------------------------
# Ten distinct functions (ten code digests), light stdlib work on a few hundred numbers.


def rows(n: int) -> list[float]:
    return [float((i * 7919) % 1000) / 10 for i in range(n)]


@step
def s01_load(n: int = 500) -> list[float]:
    return rows(n)


@step
def s02_clean(values: list[float]) -> list[float]:
    return [v for v in values if v == v]


@step
def s03_scale(values: list[float], factor: float = 0.5) -> list[float]:
    return [v * factor for v in values]


@step
def s04_shift(values: list[float]) -> list[float]:
    low = min(values)
    return [v - low for v in values]


@step
def s05_square(values: list[float]) -> list[float]:
    return [v * v for v in values]


@step
def s06_bucket(values: list[float], width: float = 100.0) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        key = str(int(v // width))
        counts[key] = counts.get(key, 0) + 1
    return counts


@step
def s07_stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "mean": sum(values) / len(values), "max": max(values)}


@step
def s08_join(buckets: dict[str, int], stats: dict[str, float]) -> dict[str, float]:
    return {**stats, "buckets": float(len(buckets))}


@step
def s09_score(summary: dict[str, float]) -> float:
    return summary["mean"] / (summary["max"] or 1.0)


@step
def s10_report(score: float, summary: dict[str, float]) -> str:
    return f"score {score:.4f} over {summary['n']:.0f} rows"


@pipeline
def ten_steps(n: int = 500):
    values = s05_square(s04_shift(s03_scale(s02_clean(s01_load(n)))))
    summary = s08_join(s06_bucket(values), s07_stats(values))
    return s10_report(s09_score(summary), summary)


def ten_plain(n: int = 500) -> str:
    """The same ten functions called as plain Python: the floor of any pipeline runner."""
    values = s05_square(s04_shift(s03_scale(s02_clean(s01_load(n)))))
    summary = s08_join(s06_bucket(values), s07_stats(values))
    return s10_report(s09_score(summary), summary)
