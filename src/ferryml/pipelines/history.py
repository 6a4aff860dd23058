"""Past pipeline runs, read back from the tracking store: what ``ferry pipeline runs`` and
``ferry pipeline show`` print."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ferryml.errors import InvalidArgument
from ferryml.store.entities import Run
from ferryml.tracking.client import FerryClient

__all__ = [
    "PipelineView",
    "StepView",
    "check_pipeline_run",
    "describe_run",
    "list_pipeline_runs",
    "pipeline_view",
]


@dataclass(frozen=True)
class StepView:
    node: str
    step: str
    upstream: tuple[str, ...]
    status: str  # FINISHED FAILED SKIPPED (never started) or RUNNING
    cache: str
    duration: float | None
    run_id: str | None
    failure: str | None


@dataclass(frozen=True)
class PipelineView:
    run: Run
    steps: tuple[StepView, ...]


def list_pipeline_runs(client: FerryClient, max_results: int = 50) -> list[Run]:
    ids = [e.experiment_id for e in client.list_experiments()]
    if not ids:
        return []
    return client.search_runs(ids, "tags.`ferry.kind` = 'pipeline'", max_results=max_results).runs


def describe_run(client: FerryClient, run_id: str) -> PipelineView:
    """A pipeline run and its DAG, each step with its status, duration and cache use.

    Raises:
        NotFound: no such run. InvalidArgument: the run is not a pipeline run.
    """
    run = client.get_run(run_id)
    check_pipeline_run(run)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dag = json.loads(client.download_artifacts(run_id, "pipeline/dag.json", tmp).read_text())
    children = client.search_runs(
        [run.info.experiment_id], f"attributes.parent_run_id = '{run_id}'", max_results=10_000
    ).runs
    return pipeline_view(run, dag, children)


def check_pipeline_run(run: Run) -> None:
    """Raises InvalidArgument when ``run`` is not a pipeline run."""
    if run.data.tags.get("ferry.kind") != "pipeline":
        raise InvalidArgument(
            f"Run {run.info.run_id} is not a pipeline run. See `ferry pipeline runs`."
        )


def pipeline_view(run: Run, dag: dict[str, Any], children: list[Run]) -> PipelineView:
    """The steps of ``run`` from its DAG (``pipeline/dag.json``) and its child runs."""
    by_name = {c.info.run_name: c for c in children}
    steps = []
    for node in dag["nodes"]:
        child = by_name.get(node["id"])
        steps.append(
            StepView(
                node=node["id"],
                step=node["step"],
                upstream=tuple(node["upstream"]),
                status="SKIPPED" if child is None else child.info.status.value,
                cache="" if child is None else child.data.tags.get("ferry.cache", ""),
                duration=None if child is None else child.data.metrics.get("duration_s"),
                run_id=None if child is None else child.info.run_id,
                failure=None if child is None else child.info.failure,
            )
        )
    return PipelineView(run, tuple(steps))
