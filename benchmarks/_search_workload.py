"""The search workload of the tracking and server benchmarks' workers: the same seeded runs
and the same queries on every side, timed alike. Stdlib only, so MLflow's venv imports it."""

import random
from collections.abc import Callable, Iterator
from statistics import median
from time import perf_counter
from typing import Any

QUERIES = (
    ("filter", {"filter_string": "metrics.m0 > 0.5"}),
    ("order", {"order_by": ["metrics.m1 DESC"]}),
)


def seeded_runs(n: int) -> Iterator[tuple[dict[str, str], dict[str, float]]]:
    """The params and metrics of ``n`` runs: 10 of each, the same on every side."""
    rng = random.Random(0)
    for _ in range(n):
        params = {f"p{k}": str(rng.randint(0, 1000)) for k in range(10)}
        metrics = {f"m{k}": rng.random() for k in range(10)}
        yield params, metrics


def time_queries(
    paths: dict[str, Callable[..., Any]], repeats: int, emit: Callable[[str, object], None]
) -> None:
    """Run each query through each path once untimed, then ``repeats`` times; emit the
    fastest path's median, with the count of runs found and, for the ordered query, whether
    they came sorted."""
    for name, kw in QUERIES:
        medians = {}
        for path, search in paths.items():
            search(max_results=1000, **kw)  # untimed: a fresh interpreter's first query
            times = []
            for _ in range(repeats):
                t = perf_counter()
                runs = search(max_results=1000, **kw)
                times.append(perf_counter() - t)
            medians[path] = median(times)
        best = min(medians, key=lambda p: medians[p])
        result: dict[str, Any] = {"s": medians[best], "count": len(runs), "path": best}
        if len(paths) > 1:
            result["paths"] = medians
        if name == "order":
            m1 = [r.data.metrics["m1"] for r in runs]
            result["sorted_ok"] = m1 == sorted(m1, reverse=True)
        emit(name, result)
