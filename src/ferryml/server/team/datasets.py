"""Datasets and their numbered versions. The files themselves travel as blobs
(``/api/v1/blobs``); a version records their manifest's digest. Adding and deleting a
version needs a writer.

Dataset names hold ``/`` (they are named after paths), so a name takes as many path
segments as it has, and the routes end in ``/versions``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml.server.team._render import render
from ferryml.store.entities import DatasetVersion

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
_MAX_VERSION = 2**31 - 1  # the store's INTEGER column
Version = Annotated[int, Path(ge=1, le=_MAX_VERSION)]
VersionOrLatest = Annotated[str, Path(pattern=r"^(latest|[1-9][0-9]{0,9})$")]
_DIGEST = r"^[0-9a-f]{64}$"


class CreateDatasetVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["file", "folder", "table"]
    manifest_digest: str = Field(pattern=_DIGEST)
    files: int = Field(ge=0, le=2**63 - 1)
    size: int = Field(ge=0, le=2**63 - 1)
    source: str = Field(default="", max_length=1000)
    rows: int | None = Field(default=None, ge=0, le=2**63 - 1)
    schema_: str | None = Field(default=None, alias="schema", max_length=1_000_000)
    profile_digest: str | None = Field(default=None, pattern=_DIGEST)
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


def _store(request: Request) -> Any:
    return request.app.state.datasets


@router.get("", response_model=list[DatasetVersion])
def list_datasets(request: Request) -> Response:
    """The latest version of every dataset, by name."""
    return render(_store(request).list_datasets(), list[DatasetVersion])


@router.get("/{name:path}/versions", response_model=list[DatasetVersion])
def list_versions(name: str, request: Request) -> Response:
    """Every version of a dataset, oldest first."""
    return render(_store(request).list_dataset_versions(name), list[DatasetVersion])


@router.post("/{name:path}/versions", response_model=DatasetVersion, status_code=201)
def create_version(name: str, body: CreateDatasetVersion, request: Request) -> Response:
    """Record the next version of a dataset (created on first use)."""
    version = _store(request).create_dataset_version(
        name,
        kind=body.kind,
        manifest_digest=body.manifest_digest,
        files=body.files,
        size=body.size,
        source=body.source,
        rows=body.rows,
        schema=body.schema_,
        profile_digest=body.profile_digest,
        run_id=body.run_id,
    )
    return render(version, DatasetVersion, 201)


@router.get("/{name:path}/versions/{version}", response_model=DatasetVersion)
def get_version(name: str, version: VersionOrLatest, request: Request) -> Response:
    """A version by number, or the latest (``latest``)."""
    number = None if version == "latest" else int(version)
    return render(_store(request).get_dataset_version(name, number), DatasetVersion)


@router.delete("/{name:path}/versions/{version}", status_code=204)
def delete_version(name: str, version: Version, request: Request) -> Response:
    """Delete a version for good; its number is never given to other data."""
    _store(request).delete_dataset_version(name, version)
    return Response(status_code=204)
