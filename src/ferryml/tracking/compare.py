"""Runs side by side: every param and metric of any of them, and which ones differ."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ferryml.store.entities import Run

__all__ = ["Comparison", "ComparisonRow", "compare_runs"]


@dataclass(frozen=True)
class ComparisonRow:
    kind: str  # "param" | "metric"
    key: str
    values: tuple[str | float | None, ...]  # one per run; None where the run lacks the key
    differs: bool


@dataclass(frozen=True)
class Comparison:
    run_ids: tuple[str, ...]
    run_names: tuple[str, ...]
    rows: tuple[ComparisonRow, ...]


def compare_runs(runs: Sequence[Run]) -> Comparison:
    rows: list[ComparisonRow] = []
    for kind in ("param", "metric"):
        keys = sorted({k for run in runs for k in _values(run, kind)})
        for key in keys:
            values = tuple(_values(run, kind).get(key) for run in runs)
            rows.append(ComparisonRow(kind, key, values, len(set(map(repr, values))) > 1))
    return Comparison(
        run_ids=tuple(r.info.run_id for r in runs),
        run_names=tuple(r.info.run_name for r in runs),
        rows=tuple(rows),
    )


def _values(run: Run, kind: str) -> dict[str, str | float]:
    return dict(run.data.params) if kind == "param" else dict(run.data.metrics)
