"""Deployments: routes and weights, live figures per route, the history; maintainers set
weights, promote the canary and roll back, each with a reason."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Deployments", "/deployments", 50)


@router.get("/deployments")
def deployments(request: Request, user: Viewer) -> Response:
    found = request.app.state.deployments.list_deployments()
    return render(request, "deployments.html", title="Deployments", deployments=found)


@router.get("/deployments/{name}")
def deployment(request: Request, name: str, user: Viewer) -> Response:
    manager = request.app.state.deployments
    spec = manager.get(name)
    history = list(reversed(manager.history(name)))
    monitors = [
        m for m, s in request.app.state.monitors.list_monitors() if s.get("deployment") == name
    ]
    decisions = request.app.state.automation.list_decisions(limit=200)
    return render(
        request,
        "deployment.html",
        title=f"Deployment {name}",
        name=name,
        spec=spec,
        history=history,
        monitors=monitors,
        decisions=[d for d in decisions if d.deployment == name][:10],
        data={"deployment": name},
    )
