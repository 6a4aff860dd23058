"""Parameter sweeps: a pipeline run per trial, side by side on one executor, recorded as
sibling runs under one parent run, and the best trial by a chosen metric."""

from __future__ import annotations

import itertools
import json
import random as stdlib_random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.pipelines._dsl import Pipeline
from ferryml.pipelines._loop import opened, run_plans
from ferryml.pipelines.engine import (
    DEFAULT_EXPERIMENT,
    PipelineResult,
    _experiment,
    _result,
    _start_plan,
)
from ferryml.pipelines.executors import Executor
from ferryml.tracking.client import FerryClient

__all__ = ["SweepResult", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    run_id: str
    trials: list[tuple[dict[str, Any], PipelineResult]]
    metric: str
    best_params: dict[str, Any] | None
    best_run_id: str | None
    best_value: float | None


def sweep(
    pipeline: Pipeline,
    *,
    metric: str,
    mode: str = "max",
    grid: Mapping[str, Sequence[Any]] | None = None,
    random: Mapping[str, Sequence[Any] | tuple[float, float]] | None = None,
    trials: int = 10,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    executor: str | Executor = "local",
    workers: int | None = None,
    address: str | None = None,
    settings: Settings | None = None,
    experiment: str | None = None,
) -> SweepResult:
    """Run ``pipeline`` once per parameter combination and report the best by ``metric``
    (a metric a step logged with ``ferryml.log_metric``).

    Args:
        grid: every combination of these values.
        random: ``trials`` draws: from a list (a choice) or a ``(low, high)`` tuple
            (uniform; whole numbers when both ends are).
        params: fixed parameters of every trial.

    Example:
        >>> sweep(training, grid={"lr": [0.01, 0.1]}, metric="score", executor="process")
    """
    if mode not in ("max", "min"):
        raise InvalidArgument(f"mode must be 'max' or 'min'; got {mode!r}.")
    combos = _combinations(grid or {}, random or {}, trials, seed)
    for combo in combos:
        pipeline.bind({**(params or {}), **combo})  # unknown params fail before any run
    settings = settings or Settings.resolve()
    client = FerryClient(settings)
    try:
        with opened(executor, workers, address) as pool:  # fails before anything is recorded
            parent = client.create_run(
                _experiment(client, experiment or DEFAULT_EXPERIMENT),
                run_name=f"sweep-{pipeline.name}",
                tags={
                    "ferry.kind": "sweep",
                    "ferry.pipeline": pipeline.name,
                    "ferry.sweep.metric": metric,
                    "ferry.sweep.mode": mode,
                },
            ).info.run_id
            spaces = {k: list(v) for k, v in (random or {}).items()}
            client.log_dict(
                parent, {"grid": dict(grid or {}), "random": spaces, "trials": combos}, "sweep.json"
            )
            plans = [
                _start_plan(
                    client,
                    pipeline,
                    {**(params or {}), **combo},
                    True,
                    experiment,
                    parent,
                    {"ferry.sweep": parent},
                )
                for combo in combos
            ]
            run_plans(client, settings, plans, pool)
        results = [
            (combo, _result(plan, settings)) for combo, plan in zip(combos, plans, strict=True)
        ]
        scored = []
        for combo, result in results:
            value = client.get_run(result.run_id).data.metrics.get(metric)
            if result.status == "FINISHED" and value is not None and value == value:
                scored.append((value, combo, result.run_id))
        best = (max if mode == "max" else min)(scored, key=lambda s: s[0]) if scored else None
        if best is not None:
            client.log_batch(
                parent,
                params={k: json.dumps(v) for k, v in best[1].items()},
                tags={"ferry.best_run": best[2]},
            )
            client.log_metric(parent, f"best_{metric}", best[0])
        client.set_terminated(
            parent,
            "FINISHED" if best is not None else "FAILED",
            failure=None if best else f"No trial logged metric {metric!r}.",
        )
        return SweepResult(
            parent,
            results,
            metric,
            best[1] if best else None,
            best[2] if best else None,
            best[0] if best else None,
        )
    finally:
        client.close()


def _combinations(
    grid: Mapping[str, Sequence[Any]], random: Mapping[str, Any], trials: int, seed: int
) -> list[dict[str, Any]]:
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidArgument(f"Grid values of {name!r} must be a non-empty list.")
    combos = (
        [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        if grid
        else [{}]
    )
    if not random:
        return combos
    if trials < 1:
        raise InvalidArgument(f"trials must be at least 1; got {trials}.")
    rng = stdlib_random.Random(seed)
    drawn = []
    for _ in range(trials):
        draw = {}
        for name, space in random.items():
            if isinstance(space, tuple) and len(space) == 2:
                low, high = space
                both_int = isinstance(low, int) and isinstance(high, int)
                draw[name] = rng.randint(low, high) if both_int else rng.uniform(low, high)
            elif isinstance(space, Sequence) and not isinstance(space, str) and space:
                draw[name] = rng.choice(list(space))
            else:
                raise InvalidArgument(
                    f"Random space of {name!r} must be a list of choices or a (low, high) "
                    f"tuple; got {space!r}."
                )
        drawn.append(draw)
    return [{**c, **d} for c in combos for d in drawn]
