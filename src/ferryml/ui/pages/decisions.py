"""The closed loop's decisions: each one's timeline, with what it touched, and approve or
reject buttons for maintainers when its policy asks for approval."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.automation import decision_story
from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Decisions", "/decisions", 70)


@router.get("/decisions")
def decisions(request: Request, user: Viewer) -> Response:
    found = request.app.state.automation.list_decisions(limit=500)
    return render(request, "decisions.html", title="Decisions", decisions=found)


@router.get("/decisions/{decision_id}")
def decision(request: Request, decision_id: int, user: Viewer) -> Response:
    story = decision_story(request.app.state.settings, decision_id)
    return render(request, "decision.html", title=f"Decision {decision_id}", story=story)
