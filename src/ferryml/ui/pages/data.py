"""Datasets: their versions, a version's schema and per-column profile (histograms), the
diff between two versions, and validation against the project's expectations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ferryml.errors import FerryError
from ferryml.ui._pages import Nav, Viewer, render

if TYPE_CHECKING:  # profiles need pandas, which the server does not load to start
    from ferryml.data.profile import CategoricalProfile, NumericProfile

router = APIRouter()
NAV = Nav("Data", "/data", 20)
BARS = 120  # the histograms' width in px


@router.get("/data")
def datasets(request: Request, user: Viewer) -> Response:
    found = request.app.state.datasets.list_datasets()
    return render(request, "datasets.html", title="Data", datasets=found)


@router.get("/data/{name:path}/versions/{version}")
def version(
    request: Request,
    name: str,
    version: int,
    user: Viewer,
    against: int | None = None,
    validate: bool = False,
) -> Response:
    from ferryml.data.compare import diff_versions
    from ferryml.data.workspace import Workspace

    store = request.app.state.datasets
    found = store.get_dataset_version(name, version)
    ws = Workspace(request.app.state.settings)
    try:
        profile = ws.profile(found) if found.profile_digest else None
        diff = diff_versions(ws, f"{name}@{against}", found.ref) if against else None
        report, problem = None, None
        if validate:
            try:
                report = ws.validate(found.ref)
            except FerryError as e:  # no expectations, or not a table: say so in the page
                problem = str(e)
    finally:
        ws.close()
    return render(
        request,
        "dataset_version.html",
        title=found.ref,
        version=found,
        schema=json.loads(found.schema)["columns"] if found.schema else [],
        columns=[_column(n, c) for n, c in profile.columns.items()] if profile else [],
        others=[v.version for v in store.list_dataset_versions(name) if v.version != version],
        against=against,
        diff=diff,
        report=report,
        problem=problem,
    )


@router.get("/data/{name:path}")
def dataset(request: Request, name: str, user: Viewer) -> Response:
    found = sorted(request.app.state.datasets.list_dataset_versions(name), key=lambda v: -v.version)
    return render(request, "dataset.html", title=f"Dataset {name}", name=name, versions=found)


def _column(name: str, column: NumericProfile | CategoricalProfile) -> dict[str, Any]:
    """A column's summary and its histogram as bars (x, height, label) of at most 30 px."""
    from ferryml.data.profile import NumericProfile

    if isinstance(column, NumericProfile):
        counts = list(column.counts)
        labels = [
            f"{column.edges[i]:.4g} to {column.edges[i + 1]:.4g}: {c}" for i, c in enumerate(counts)
        ]
        summary = {"mean": column.mean, "std": column.std, "min": column.min, "max": column.max}
    else:
        counts = list(column.frequencies.values()) + ([column.other] if column.other else [])
        names = [*column.frequencies, *(["other"] if column.other else [])]
        labels = [f"{n}: {c}" for n, c in zip(names, counts, strict=True)]
        summary = {"categories": len(column.frequencies)}
    peak = max(counts, default=0) or 1
    width = max(2, BARS // max(1, len(counts)))
    bars = [
        (i * width, round(c / peak * 30, 1), label)
        for i, (c, label) in enumerate(zip(counts, labels, strict=True))
    ]
    return {
        "name": name,
        "kind": "numeric" if isinstance(column, NumericProfile) else "categorical",
        "count": column.count,
        "missing_rate": column.missing_rate,
        "summary": summary,
        "bars": bars,
        "bar_width": width,
    }
