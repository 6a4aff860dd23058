"""Reads the web UI needs beyond the tracking store's: the keys an experiment's runs use,
and a metric's history as arrays, whole or reduced in the database to what a chart shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import literal, select

from ferryml.store import _schema as t
from ferryml.store._series_sql import bucket_points, step_range
from ferryml.store.sql import StorePart, _experiment_int

if TYPE_CHECKING:  # numpy is loaded by the first series read, not by the server's start
    import numpy as np

__all__ = ["MetricSeries", "RunKeys", "RunOutputs", "SqlRunViews"]

MAX_KEYS = 1000  # per kind: a column picker, not an export
KEY_SAMPLE = 2000  # runs, newest first: all 10,000 runs' keys took a second


@dataclass(frozen=True)
class RunKeys:
    """The param, metric and tag keys that the runs of some experiments use, sorted."""

    params: tuple[str, ...]
    metrics: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class MetricSeries:
    """A metric's points, ordered by step then time, and how many it has in all
    (``total``): all of them with NaN values kept, or a reduction without NaN."""

    key: str
    steps: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    total: int


@dataclass(frozen=True)
class RunOutputs:
    """What a run produced: dataset versions and model versions, as (name, version)."""

    datasets: tuple[tuple[str, int], ...]
    models: tuple[tuple[str, int], ...]


class SqlRunViews(StorePart):
    def list_run_outputs(self, run_id: str) -> RunOutputs:
        d, m = t.dataset_versions.c, t.model_versions.c
        with self.sql.engine.connect() as conn:
            datasets = conn.execute(
                select(d.name, d.version).where(d.run_id == run_id).order_by(d.name, d.version)
            ).all()
            models = conn.execute(
                select(m.name, m.version).where(m.run_id == run_id).order_by(m.name, m.version)
            ).all()
        return RunOutputs(
            tuple((r.name, r.version) for r in datasets), tuple((r.name, r.version) for r in models)
        )

    def list_run_keys(self, experiment_ids: Sequence[str]) -> RunKeys:
        """The keys of the experiments' newest ``KEY_SAMPLE`` runs."""
        runs = (
            select(t.runs.c.run_id)
            .where(t.runs.c.experiment_id.in_([_experiment_int(e) for e in experiment_ids]))
            .order_by(t.runs.c.start_time.desc())
            .limit(KEY_SAMPLE)
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

    def get_metric_series(self, run_id: str, key: str, buckets: int | None = None) -> MetricSeries:
        """The metric's points; with ``buckets``, a long history is cut into that many step
        ranges and only the first, last, lowest and highest finite point of each is read.
        Raises NotFound for an unknown run; an unknown key gives an empty series."""
        self.sql.get_run_info(run_id)
        m = t.metrics.c
        stmt: Any = (
            select(m.step, m.timestamp, m.value, m.is_nan)
            .where(m.run_id == run_id, m.key == key)
            .order_by(m.step, m.timestamp)
        )
        total = None
        if buckets is not None:
            with self.sql.engine.connect() as conn:
                span = conn.execute(step_range(run_id, key)).one()
            first, last, total = span.first, span.last, span.total
            # Fewer steps than twice the buckets: nothing to gain, and steps logged all at
            # one value (no step given) would leave a chart by time a single bucket.
            if first is not None and last - first + 1 > 2 * buckets:
                width = -(-(last - first + 1) // buckets)
                stmt = bucket_points(run_id, key, first, width, buckets).add_columns(
                    literal(0).label("is_nan")
                )
        rows = self._fetch(stmt)
        import numpy as np

        if not rows:
            empty = np.empty(0)
            return MetricSeries(key, empty.astype(np.int64), empty.astype(np.int64), empty, 0)
        table = np.array(rows, dtype=np.float64)
        values = table[:, 2]
        values[table[:, 3] != 0] = np.nan
        steps, times = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
        return MetricSeries(key, steps, times, values, len(rows) if total is None else total)

    def _fetch(self, stmt: Any) -> list[tuple[Any, ...]]:
        compiled = stmt.compile(dialect=self.sql.engine.dialect)
        params: Any = (
            tuple(compiled.params[k] for k in compiled.positiontup or ())
            if compiled.positional
            else compiled.params
        )
        with self.sql.engine.connect() as conn:
            # The driver's own tuples: SQLAlchemy's rows cost 2.5x as much at 100,000 points.
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(str(compiled), params)
                return list(cursor.fetchall())
            finally:
                cursor.close()
