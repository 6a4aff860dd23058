"""Pipeline runs: each one's DAG drawn, every step's status, duration, cache hit or miss,
logs and traceback."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import NotFound
from ferryml.pipelines.history import check_pipeline_run, pipeline_view
from ferryml.ui._graph import GraphNode, layout
from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Pipelines", "/pipelines", 30)
LOG_LIMIT = 100_000  # characters of a step's log shown in the page


@router.get("/pipelines")
def pipelines(request: Request, user: Viewer) -> Response:
    store = request.app.state.tracking
    ids = [e.experiment_id for e in store.list_experiments()]
    runs = (
        store.search_runs(
            ids, "tags.`ferry.kind` = 'pipeline'", ["attributes.start_time DESC"], 200
        )[0]
        if ids
        else []
    )
    return render(request, "pipelines.html", title="Pipelines", runs=runs)


@router.get("/pipelines/{run_id}")
def pipeline(request: Request, run_id: str, user: Viewer) -> Response:
    store, artifacts = request.app.state.tracking, request.app.state.artifacts
    run = store.get_run(run_id)
    check_pipeline_run(run)
    entries = store.list_artifacts(run_id, "pipeline/dag.json")
    if not entries:
        raise NotFound(f"Pipeline run {run_id} has no DAG stored (pipeline/dag.json).")
    dag = json.loads(artifacts.get_bytes(entries[0].digest))
    children, _ = store.search_runs(
        [run.info.experiment_id], f"attributes.parent_run_id = '{run_id}'", (), 10_000
    )
    view = pipeline_view(run, dag, children)
    nodes = [
        GraphNode(
            s.node,
            s.node,
            " · ".join(x for x in (s.status.lower(), _cache(s.cache), _seconds(s.duration)) if x),
            f"#step-{s.node}",
            "hit" if s.cache == "hit" else s.status.lower(),
        )
        for s in view.steps
    ]
    edges = [(u, s.node) for s in view.steps for u in s.upstream]
    logs = {s.node: _logs(store, artifacts, s.run_id) for s in view.steps if s.run_id}
    return render(
        request,
        "pipeline.html",
        title=f"Pipeline run {run.info.run_name}",
        view=view,
        drawing=layout(nodes, edges),
        logs=logs,
    )


def _logs(store: Any, artifacts: Any, run_id: str) -> list[tuple[str, str]]:
    """A step's stdout and stderr of each attempt, the end kept when long."""
    found = []
    for entry in store.list_artifacts(run_id, "logs"):
        text = artifacts.get_bytes(entry.digest).decode(errors="replace")
        found.append((entry.path, text[-LOG_LIMIT:]))
    return found


def _cache(cache: str) -> str:
    return f"cache {cache}" if cache else ""


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"
