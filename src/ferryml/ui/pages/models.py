"""Registered models, a model's versions, aliases and audit trail, and a version: its
evaluation, gate decisions and lineage drawn as a graph; maintainers move aliases."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import NotFound
from ferryml.registry.lineage import LineageGraph, lineage_graph
from ferryml.ui._graph import GraphNode, layout
from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Models", "/models", 40)
_GATES = ("promote", "promotion_refused", "rollback")


@router.get("/models")
def models(request: Request, user: Viewer) -> Response:
    found = request.app.state.registry.list_registered_models()
    return render(request, "models.html", title="Models", models=found)


@router.get("/models/{name}")
def model(request: Request, name: str, user: Viewer) -> Response:
    store = request.app.state.registry
    found = store.get_registered_model(name)
    versions = sorted(store.list_model_versions(name), key=lambda v: -v.version)
    events = list(reversed(store.events(name)))
    metrics = sorted({k for v in versions for k in v.metrics})
    return render(
        request,
        "model.html",
        title=f"Model {name}",
        model=found,
        versions=versions,
        events=events,
        metrics=metrics,
        deployments=_deployments_of(request, name),
    )


@router.get("/models/{name}/versions/{version}")
def version(request: Request, name: str, version: int, user: Viewer) -> Response:
    store = request.app.state.registry
    found = store.get_model_version(name, version)
    graph = lineage_graph(name, version, settings=request.app.state.settings)
    gates = [
        e for e in reversed(store.events(name)) if e.version == version or e.to_version == version
    ]
    plots = _evaluation_plots(request, found.run_id)
    signature = json.loads(found.signature) if found.signature else None
    return render(
        request,
        "model_version.html",
        title=f"{name} v{version}",
        version=found,
        drawing=layout(*lineage_nodes(graph)),
        events=gates,
        gate_actions=_GATES,
        evidence_lines=evidence_lines,
        plots=plots,
        signature=signature,
        aliases=sorted({"champion", "challenger", *store.get_registered_model(name).aliases}),
    )


def evidence_lines(evidence: Mapping[str, Any]) -> list[str]:
    """A gate's evidence as a person reads it: each check with its verdict, and the metrics
    of the candidate beside the champion's; other evidence as key: value."""
    if "checks" not in evidence:
        return [f"{k}: {v}" for k, v in sorted(evidence.items())]
    lines = [
        f"{'passed' if c.get('passed') else 'FAILED'} {c.get('name')}: {c.get('detail', '')}"
        for c in evidence.get("checks") or []
    ]
    new = (evidence.get("candidate") or {}).get("metrics") or {}
    old = (evidence.get("champion") or {}).get("metrics") or {}
    for key in sorted(new):
        if isinstance(new[key], int | float):
            before = f" (champion {old[key]:.4g})" if isinstance(old.get(key), int | float) else ""
            lines.append(f"{key} {new[key]:.4g}{before}")
    if evidence.get("forced"):
        lines.append("forced past a failed gate")
    return lines


def lineage_nodes(graph: LineageGraph) -> tuple[list[GraphNode], list[tuple[str, str]]]:
    """The graph's nodes, each linking to its page."""
    nodes = [
        GraphNode(n.key, n.label, n.detail or n.kind.replace("_", " "), _href(n.kind, n.key))
        for n in graph.nodes
    ]
    return nodes, list(graph.edges)


def _href(kind: str, key: str) -> str | None:
    if kind == "model_version":
        name, _, number = key.rpartition("/")
        return f"/models/{name}/versions/{number}"
    if kind == "run":
        return f"/runs/{key}"
    if kind == "data_version":
        name, _, number = key.rpartition("@")
        return f"/data/{name}/versions/{number}"
    if kind == "prediction":
        return f"/predictions/{key}"
    return None


def _evaluation_plots(request: Request, run_id: str | None) -> list[Any]:
    """The evaluation's images logged on the version's run."""
    if not run_id:
        return []
    try:
        entries = request.app.state.tracking.list_artifacts(run_id, "evaluation")
    except NotFound:
        return []
    return [e for e in entries if e.path.endswith((".png", ".svg"))]


def _deployments_of(request: Request, model: str) -> list[str]:
    return [
        name
        for name, spec in request.app.state.deployments.store.list_deployments()
        if spec.get("model") == model
    ]
