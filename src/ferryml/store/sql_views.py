"""Reads the web UI needs beyond the tracking store's: the keys an experiment's runs use,
and a metric's whole history as arrays (fast enough to downsample 100,000 steps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from ferryml.store import _schema as t
from ferryml.store.sql import StorePart, _experiment_int

__all__ = ["MetricSeries", "RunKeys", "SqlRunViews"]

MAX_KEYS = 1000  # per kind: a column picker, not an export


@dataclass(frozen=True)
class RunKeys:
    """The param, metric and tag keys that the runs of some experiments use, sorted."""

    params: tuple[str, ...]
    metrics: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class MetricSeries:
    """A metric's history, ordered by step then time; NaN values are kept."""

    key: str
    steps: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray


class SqlRunViews(StorePart):
    def list_run_keys(self, experiment_ids: Sequence[str]) -> RunKeys:
        runs = select(t.runs.c.run_id).where(
            t.runs.c.experiment_id.in_([_experiment_int(e) for e in experiment_ids])
        )
        found = []
        with self.sql.engine.connect() as conn:
            for table in (t.params, t.latest_metrics, t.tags):
                stmt = (
                    select(table.c.key)
                    .where(table.c.run_id.in_(runs))
                    .distinct()
                    .order_by(table.c.key)
                    .limit(MAX_KEYS)
                )
                found.append(tuple(conn.execute(stmt).scalars()))
        return RunKeys(*found)

    def get_metric_series(self, run_id: str, key: str) -> MetricSeries:
        """Raises NotFound for an unknown run; an unknown key gives an empty series."""
        self.sql.get_run_info(run_id)
        m = t.metrics.c
        stmt = (
            select(m.step, m.timestamp, m.value, m.is_nan)
            .where(m.run_id == run_id, m.key == key)
            .order_by(m.step, m.timestamp)
        )
        with self.sql.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            empty = np.empty(0)
            return MetricSeries(key, empty.astype(np.int64), empty.astype(np.int64), empty)
        steps, times, values, nans = (np.asarray(c) for c in zip(*rows, strict=True))
        values = values.astype(np.float64)
        values[nans.astype(bool)] = np.nan
        return MetricSeries(key, steps.astype(np.int64), times.astype(np.int64), values)
