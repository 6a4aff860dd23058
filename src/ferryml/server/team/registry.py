"""Registered models, versions, tags, aliases and their audit trail. Moving an alias
(which is what promotion does) needs a maintainer, or a maintainer the model names."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml._identity import current_user
from ferryml.registry.lineage import LineageGraph, lineage_graph
from ferryml.server.team._auth import needs_maintainer_of
from ferryml.server.team._render import render
from ferryml.store.entities import ModelVersion, RegisteredModel, RegistryEvent

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/models", tags=["registry"])
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]  # the registry's INTEGER column


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateVersion(_Body):
    package_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    flavor: str
    source: str
    run_id: str | None = None
    signature: str | None = None
    data_versions: list[str] = []
    profile_digest: str | None = None
    description: str = ""


class UpdateVersion(_Body):
    status: str | None = None
    description: str | None = None
    metrics: dict[str, float] | None = None
    reason: str = ""


class SetAlias(_Body):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str = ""
    evidence: dict[str, Any] | None = None
    action: str = Field(default="set_alias", pattern=r"^(set_alias|promote|rollback)$")


class Refusal(_Body):
    version: int = Field(ge=1, le=2**31 - 1)
    champion: int | None = Field(default=None, ge=1, le=2**31 - 1)
    reason: str = ""
    evidence: dict[str, Any] | None = None


class Promotion(_Body):
    candidate: int = Field(ge=1, le=2**31 - 1)
    alias: str = "champion"
    rows: str = Field(pattern=r"^[0-9a-f]{64}$")  # the blob of the evaluation rows (Parquet)
    target: str
    task: str | None = Field(default=None, pattern=r"^(classification|regression)$")
    force: bool = False
    reason: str = ""
    slices: list[str] = []


class CheckResult(BaseModel):
    name: str
    passed: bool
    detail: str


class PromotionDecision(BaseModel):
    name: str
    candidate: int
    alias: str
    champion: int | None
    passed: bool
    forced: bool
    moved: bool
    checks: list[CheckResult]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float]


class AliasTarget(BaseModel):
    alias: str
    version: int
    previous: int | None = None


class SetTag(_Body):
    value: str


def _store(request: Request) -> Any:
    return request.app.state.registry


@router.get("", response_model=list[RegisteredModel])
def list_models(request: Request) -> Response:
    return render(_store(request).list_registered_models(), list[RegisteredModel])


@router.get("/{name}", response_model=RegisteredModel)
def get_model(name: str, request: Request) -> Response:
    return render(_store(request).get_registered_model(name), RegisteredModel)


@router.delete("/{name}", status_code=204, dependencies=[needs_maintainer_of("model")])
def delete_model(name: str, request: Request, reason: str = "") -> Response:
    """Delete a model and its versions for good (refused while it has aliases)."""
    _store(request).delete_registered_model(name, user=current_user(), reason=reason)
    return Response(status_code=204)


@router.get("/{name}/versions", response_model=list[ModelVersion])
def list_versions(name: str, request: Request) -> Response:
    return render(_store(request).list_model_versions(name), list[ModelVersion])


@router.post("/{name}/versions", response_model=ModelVersion, status_code=201)
def create_version(name: str, body: CreateVersion, request: Request) -> Response:
    version = _store(request).create_model_version(
        name,
        package_digest=body.package_digest,
        flavor=body.flavor,
        source=body.source,
        run_id=body.run_id,
        user=current_user(),
        signature=body.signature,
        data_versions=tuple(body.data_versions),
        profile_digest=body.profile_digest,
        description=body.description,
    )
    return render(version, ModelVersion, 201)


@router.get("/{name}/versions/{version}", response_model=ModelVersion)
def get_version(name: str, version: Version, request: Request) -> Response:
    return render(_store(request).get_model_version(name, version), ModelVersion)


@router.get("/{name}/versions/{version}/lineage", response_model=LineageGraph)
def lineage(name: str, version: Version, request: Request) -> Response:
    """The version, its run, the data versions the run read and the code commit."""
    graph = lineage_graph(name, version, settings=request.app.state.settings)
    return render(graph, LineageGraph)


@router.delete(
    "/{name}/versions/{version}", status_code=204, dependencies=[needs_maintainer_of("model")]
)
def delete_version(name: str, version: Version, request: Request, reason: str = "") -> Response:
    """Delete a version for good (refused while an alias points at it)."""
    _store(request).delete_model_version(name, version, user=current_user(), reason=reason)
    return Response(status_code=204)


@router.patch("/{name}/versions/{version}", response_model=ModelVersion)
def update_version(name: str, version: Version, body: UpdateVersion, request: Request) -> Response:
    updated = _store(request).update_model_version(
        name,
        version,
        user=current_user(),
        status=body.status,
        description=body.description,
        metrics=body.metrics,
        reason=body.reason,
    )
    return render(updated, ModelVersion)


@router.put("/{name}/versions/{version}/tags/{key}", status_code=204)
def set_tag(name: str, version: Version, key: str, body: SetTag, request: Request) -> Response:
    _store(request).set_tag(name, version, key, body.value)
    return Response(status_code=204)


@router.get("/{name}/aliases/{alias}", response_model=AliasTarget)
def get_alias(name: str, alias: str, request: Request) -> Response:
    version = _store(request).resolve_alias(name, alias)
    return render(AliasTarget(alias=alias, version=version), AliasTarget)


@router.put(
    "/{name}/aliases/{alias}",
    response_model=AliasTarget,
    dependencies=[needs_maintainer_of("model")],
)
def set_alias(name: str, alias: str, body: SetAlias, request: Request) -> Response:
    if body.action == "promote":  # only after a gate passed it, never on the client's word
        from ferryml.registry.gates import check_gated

        check_gated(request.app.state.automation, name, body.version, body.evidence)
    previous = _store(request).set_alias(
        name,
        alias,
        body.version,
        user=current_user(),
        reason=body.reason,
        evidence=body.evidence,
        action=body.action,
    )
    return render(AliasTarget(alias=alias, version=body.version, previous=previous), AliasTarget)


@router.post(
    "/{name}/promotions",
    response_model=PromotionDecision,
    dependencies=[needs_maintainer_of("model")],
)
def promote(name: str, body: Promotion, request: Request) -> Response:
    """Evaluate the candidate and the alias's holder on the rows sent, here on the server,
    and move the alias only if the gate passes (or ``force``); the decision is recorded
    either way, with the token's user."""
    from ferryml.registry.gates import promote_on_rows
    from ferryml.registry.models import Registry

    rows = request.app.state.artifacts.get_bytes(body.rows)
    registry = Registry(request.app.state.settings)
    try:
        fields = body.model_dump(exclude={"candidate", "rows"})
        decision = promote_on_rows(registry, name, body.candidate, rows=rows, **fields)
    finally:
        registry.close()
    return render(decision, PromotionDecision)


@router.post("/{name}/aliases/{alias}/refusals", status_code=204)
def record_refusal(name: str, alias: str, body: Refusal, request: Request) -> Response:
    """Record that a gate refused a version the alias (anyone who may write may say so)."""
    _store(request).record_refusal(
        name,
        alias,
        body.version,
        champion=body.champion,
        user=current_user(),
        reason=body.reason,
        evidence=body.evidence,
    )
    return Response(status_code=204)


@router.delete(
    "/{name}/aliases/{alias}", status_code=204, dependencies=[needs_maintainer_of("model")]
)
def delete_alias(name: str, alias: str, request: Request, reason: str = "") -> Response:
    _store(request).delete_alias(name, alias, user=current_user(), reason=reason)
    return Response(status_code=204)


@router.get("/{name}/events", response_model=list[RegistryEvent])
def events(name: str, request: Request) -> Response:
    return render(_store(request).events(name), list[RegistryEvent])
