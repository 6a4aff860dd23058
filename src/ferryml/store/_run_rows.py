"""Reading runs: one row per run with its params, tags, latest metrics and inputs folded
into one JSON document by the database, and the ``Run`` built from each row."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, Table, select

from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import Run, RunData, RunInfo, RunInput, RunStatus

__all__ = ["run_info", "runs_from_rows", "select_runs"]


def run_info(row: Any) -> RunInfo:
    return RunInfo(
        run_id=row.run_id,
        experiment_id=str(row.experiment_id),
        run_name=row.run_name,
        status=RunStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        lifecycle_stage=row.lifecycle_stage,
        parent_run_id=row.parent_run_id,
        user=row.user_id,
        description=row.description,
        failure=row.failure,
    )


@functools.cache
def select_runs(dialect: str) -> Select[Any]:
    """Runs with their params, tags, latest metrics and inputs, one row per run: the child
    rows of each kind are folded into one JSON document per run by the database (the last
    four columns), so 1,000 runs are 1,000 rows. Built once per dialect (a select is
    immutable)."""
    r = t.runs.c

    def folded(table: Table, aggregate: Any) -> Any:
        return select(aggregate).where(table.c.run_id == r.run_id).scalar_subquery()

    p, g, m, i = t.params.c, t.tags.c, t.latest_metrics.c, t.run_inputs.c
    return select(
        *t.runs.c,
        folded(t.params, _dialect.json_object_agg(dialect, p.key, p.value)),
        folded(t.tags, _dialect.json_object_agg(dialect, g.key, g.value)),
        folded(t.latest_metrics, _dialect.json_metrics_agg(dialect, m.key, m.value, m.is_nan)),
        folded(
            t.run_inputs, _dialect.json_rows_agg(dialect, i.name, i.version, i.digest, i.context)
        ),
    )


_STATUSES = {s.value: s for s in RunStatus}


def runs_from_rows(rows: Iterable[Any]) -> list[Run]:
    load = _dialect.load_json
    runs = []
    for row in rows:
        metrics = _dialect.load_metrics(row[-2])
        inputs = load(row[-1])
        runs.append(
            Run(
                RunInfo(
                    row[0],
                    str(row[1]),
                    row[2],
                    _STATUSES[row[3]],
                    row[4],
                    row[5],
                    row[6],
                    row[7],
                    row[8],
                    row[9],
                    row[10],
                ),
                RunData(load(row[-4]) or {}, metrics, load(row[-3]) or {}),
                tuple(RunInput(*x) for x in inputs) if inputs else (),
            )
        )
    return runs
