"""The runs the UI benchmark shows on both sides: seeded, the same everywhere. Stdlib only,
so MLflow's venv imports it."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

PARAMS = 20
METRICS = 20
LONG_KEY = "curve"


def seeded_runs(n: int) -> Iterator[tuple[str, dict[str, str], dict[str, float]]]:
    """(name, params, metrics) of ``n`` runs, oldest first."""
    rng = random.Random(0)
    for i in range(n):
        params = {f"p{k}": str(rng.randint(0, 1000)) for k in range(PARAMS)}
        metrics = {f"m{k}": rng.random() for k in range(METRICS)}
        yield f"run-{i:05d}", params, metrics


def long_curve(steps: int) -> Iterator[tuple[int, float]]:
    """A noisy, decaying training curve with a few spikes: (step, value)."""
    rng = random.Random(1)
    for s in range(steps):
        spike = 0.5 if s % 17_011 == 0 and s else 0.0
        yield s, math.exp(-s / (steps / 5)) + 0.05 * rng.random() + spike
