"""A logged prediction's lineage: the model version that made it, the run, the data and
the commit behind that version."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.registry.lineage import prediction_lineage
from ferryml.ui._graph import layout
from ferryml.ui._pages import Viewer, render
from ferryml.ui.pages.models import lineage_nodes

router = APIRouter()


@router.get("/predictions/{prediction_id}")
def prediction(request: Request, prediction_id: str, user: Viewer) -> Response:
    graph = prediction_lineage(prediction_id, settings=request.app.state.settings)
    return render(
        request,
        "prediction.html",
        title=f"Prediction {prediction_id[:12]}",
        prediction_id=prediction_id,
        graph=graph,
        drawing=layout(*lineage_nodes(graph)),
    )
