"""The pipelines' step cache: a step's output by its cache key (a hash of the step's code,
inputs and params), so a run on any client reuses what another computed. Pipeline runs
themselves are runs (``/api/v1/runs``, tagged ``ferry.kind``). Recording an output needs
a writer, as running a pipeline does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml.errors import NotFound
from ferryml.server.team._render import render
from ferryml.store.entities import CachedOutput

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"])
CacheKey = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


class PutCachedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str = Field(min_length=1, max_length=250)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: Literal["parquet", "npy", "json", "pickle"]
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


def _cache(request: Request) -> Any:
    return request.app.state.step_cache


@router.get("/cache/{cache_key}", response_model=CachedOutput)
def get_cached_output(cache_key: CacheKey, request: Request) -> Response:
    """The output stored for a cache key; 404 when no run stored one."""
    found = _cache(request).get(cache_key)
    if found is None:
        raise NotFound(f"No step output is cached under {cache_key}.")
    return render(found, CachedOutput)


@router.put("/cache/{cache_key}", status_code=204)
def put_cached_output(cache_key: CacheKey, body: PutCachedOutput, request: Request) -> Response:
    """Record (or replace) the output stored for a cache key."""
    _cache(request).put(cache_key, body.step, body.digest, body.format, body.run_id)
    return Response(status_code=204)
