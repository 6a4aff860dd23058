"""Review queues: predictions chosen for a person to label. Reading needs a reader;
setting a deployment's queue up, a maintainer of it; choosing predictions, labelling and
skipping them, a writer, recorded as the token's user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ferryml._identity import current_user
from ferryml.server.team._auth import needs_maintainer_of
from ferryml.server.team._render import render
from ferryml.store.review import ReviewItem, ReviewQueue

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/review", tags=["review"])
Ms = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
PredictionId = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Strategy = Annotated[str, StringConstraints(pattern=r"^(confidence|disagreement|random)$")]
State = Annotated[str, StringConstraints(pattern=r"^(open|labelled|skipped|any)$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetQueue(_Body):
    strategy: Strategy = "confidence"
    size: int = Field(default=20, ge=1, le=1000)
    lookback_s: int = Field(default=7 * 24 * 3600, ge=1, le=100 * 365 * 24 * 3600)
    choices: list[str | int | float | bool] = Field(default=[], max_length=100)


class ItemIn(_Body):
    deployment: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    prediction_id: PredictionId
    prediction_time: Ms
    reason: Strategy
    score: float | None = None
    features: dict[str, Any] = {}
    prediction: Any = None
    model: str = Field(default="", max_length=256)
    version: int = Field(default=0, ge=0, le=2**31 - 1)
    shadow: Any = None
    added: Ms = 0


class Items(_Body):
    items: list[ItemIn] = Field(max_length=1000)


class Added(BaseModel):
    added: int


class Label(_Body):
    label: Any = Field(description="the true label: a number, a string or a list")


def _store(request: Request) -> Any:
    return request.app.state.review


@router.get("", response_model=list[ReviewQueue])
def list_queues(request: Request) -> Response:
    return render(_store(request).list_queues(), list[ReviewQueue])


@router.get("/{name}", response_model=ReviewQueue)
def get_queue(name: str, request: Request) -> Response:
    return render(_store(request).get_queue(name), ReviewQueue)


@router.put("/{name}", response_model=ReviewQueue, dependencies=[needs_maintainer_of("deployment")])
def set_queue(name: str, body: SetQueue, request: Request) -> Response:
    """Create or change how the deployment's predictions are chosen for review."""
    queue = _reviewing().review_queue(name, body.strategy, body.size, body.lookback_s, body.choices)
    return render(_store(request).set_queue(queue, user=current_user()), ReviewQueue)


@router.get("/{name}/items", response_model=list[ReviewItem])
def list_items(
    name: str,
    request: Request,
    state: State = "open",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    """Open items lowest confidence first; labelled or skipped ones newest first."""
    found = _store(request).list_items(name, state=None if state == "any" else state, limit=limit)
    return render(found, list[ReviewItem])


@router.get("/{name}/queued-ids", response_model=list[str])
def queued_ids(name: str, since: Ms, request: Request) -> Response:
    return render(sorted(_store(request).queued_ids(name, since)), list[str])


@router.post("/{name}/items", response_model=Added)
def add_items(name: str, body: Items, request: Request) -> Response:
    """Queue predictions a client chose; ones queued before stay as they are."""
    items = [ReviewItem(**i.model_dump()) for i in body.items if i.deployment == name]
    return render({"added": _store(request).add_items(items)}, Added)


@router.post("/{name}/fill", response_model=Added)
def fill(name: str, request: Request) -> Response:
    """Choose predictions by the queue's strategy until it holds its size."""
    store, settings = _store(request), request.app.state.settings
    return render(
        {"added": _reviewing().fill_review_queue(name, settings=settings, store=store)}, Added
    )


@router.post("/{name}/items/{prediction_id}/label", response_model=ReviewItem)
def label(name: str, prediction_id: PredictionId, body: Label, request: Request) -> Response:
    """Label the item; the label becomes the prediction's feedback, given by the token's
    user."""
    item = _store(request).label(
        name, prediction_id, _reviewing().label_text(body.label), user=current_user()
    )
    return render(item, ReviewItem)


@router.post("/{name}/items/{prediction_id}/skip", response_model=ReviewItem)
def skip(name: str, prediction_id: PredictionId, request: Request) -> Response:
    return render(_store(request).skip(name, prediction_id, user=current_user()), ReviewItem)


def _reviewing() -> Any:
    # Imported on use: choosing predictions needs pandas, which the team server does not
    # load to start.
    from ferryml.monitoring import review

    return review
