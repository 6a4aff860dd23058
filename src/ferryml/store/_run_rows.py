"""Reading runs: one row per run with its params, tags, latest metrics and inputs folded
into one JSON document by the database, and the ``Run`` built from each row."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, Table, case, select

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


def select_runs(dialect: str) -> Select[Any]:
    """Runs with their params, tags, latest metrics and inputs, one row per run: the child
    rows are folded into one JSON document per run by the database, so 1,000 runs are
    1,000 rows and 1,000 decodes."""
    r = t.runs.c

    def folded(table: Table, aggregate: Any) -> Any:
        return select(aggregate).where(table.c.run_id == r.run_id).scalar_subquery()

    p, g, m, i = t.params.c, t.tags.c, t.latest_metrics.c, t.run_inputs.c
    metric = case((m.is_nan, None), else_=_dialect.json_float(dialect, m.value))
    children = _dialect.json_bundle(
        dialect,
        folded(t.params, _dialect.json_object_agg(dialect, p.key, p.value)),
        folded(t.tags, _dialect.json_object_agg(dialect, g.key, g.value)),
        folded(t.latest_metrics, _dialect.json_object_agg(dialect, m.key, metric)),
        folded(
            t.run_inputs, _dialect.json_rows_agg(dialect, i.name, i.version, i.digest, i.context)
        ),
    )
    return select(*t.runs.c, children.label("children"))


_STATUSES = {s.value: s for s in RunStatus}


def runs_from_rows(rows: Iterable[Any]) -> list[Run]:
    runs = []
    for row in rows:
        params, tags, metrics, inputs = _dialect.load_json(row[-1])
        runs.append(
            Run(
                info=RunInfo(
                    run_id=row[0],
                    experiment_id=str(row[1]),
                    run_name=row[2],
                    status=_STATUSES[row[3]],
                    start_time=row[4],
                    end_time=row[5],
                    lifecycle_stage=row[6],
                    parent_run_id=row[7],
                    user=row[8],
                    description=row[9],
                    failure=row[10],
                ),
                data=RunData(
                    params=params or {},
                    metrics={
                        k: math.nan if v is None else float(v) for k, v in (metrics or {}).items()
                    },
                    tags=tags or {},
                ),
                inputs=tuple(RunInput(*x) for x in inputs or ()),
            )
        )
    return runs
