"""The review queue (the human in the loop): predictions chosen for a person to label,
labelled in the browser; maintainers set each deployment's queue up."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import NotFound
from ferryml.store.review import STRATEGIES, ReviewItem
from ferryml.ui._pages import Nav, Viewer, render

router = APIRouter()
NAV = Nav("Review", "/review", 80)


@router.get("/review")
def queues(request: Request, user: Viewer) -> Response:
    found = {q.deployment: q for q in request.app.state.review.list_queues()}
    names = sorted({*found, *(d.name for d in request.app.state.deployments.list_deployments())})
    return render(request, "review.html", title="Review queue", queues=found, names=names)


@router.get("/review/{name}")
def queue(request: Request, name: str, user: Viewer) -> Response:
    store = request.app.state.review
    try:
        found = store.get_queue(name)
    except NotFound:
        found = None
    items = store.list_items(name) if found else []
    done = store.list_items(name, state=None, limit=20) if found else []
    choices = list(found.choices) if found and found.choices else _seen(items)
    return render(
        request,
        "review_queue.html",
        title=f"Review {name}",
        name=name,
        queue=found,
        items=items,
        done=[i for i in done if i.state != "open"],
        choices=choices,
        strategies=STRATEGIES,
        as_json=lambda value: json.dumps(value),
    )


def _seen(items: list[ReviewItem]) -> list[object]:
    """Without set choices: the answers the models gave, as the likely labels."""
    seen: dict[str, object] = {}
    for item in items:
        for value in (item.prediction, item.shadow):
            if isinstance(value, str | int | float | bool):
                seen.setdefault(json.dumps(value), value)
    return sorted(seen.values(), key=str)[:20]
