"""MLflow's logged models (``logged-models/...``) and model registry
(``registered-models/...``, ``model-versions/...``) over ferryml's registry. A version
made from a logged model is a ferryml package of MLflow's files (flavor ``mlflow``), so
``ferry serve NAME@ALIAS`` serves it; moving an alias or deleting needs a maintainer, as
on ferryml's own routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml._identity import current_user
from ferryml.errors import InvalidArgument, NotFound
from ferryml.server.mlflow import _filters
from ferryml.server.mlflow import _json as j
from ferryml.server.mlflow import _schemas as schemas
from ferryml.server.mlflow._errors import MlflowRoute
from ferryml.server.mlflow.artifacts import locate
from ferryml.server.team._auth import maintainer_of
from ferryml.store.entities import ModelVersion
from ferryml.store.sql_mlflow import SqlMlflowStore

__all__ = ["router"]

router = APIRouter(route_class=MlflowRoute, tags=["mlflow"], responses=schemas.ERRORS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegistryKeyValue(_Body):
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(default="", max_length=8000)


def _part(request: Request) -> SqlMlflowStore:
    return SqlMlflowStore(request.app.state.tracking)


def _registry(request: Request) -> Any:
    return request.app.state.registry


def _page(items: list[Any], max_results: int, token: str | None) -> tuple[list[Any], str | None]:
    start = j.offset_of(token)
    size = max(1, max_results)
    more = start + size < len(items)
    return items[start : start + size], j.page_token(start + size if more else None)


# -- logged models -------------------------------------------------------------------------


class CreateLoggedModel(_Body):
    experiment_id: str
    name: str = Field(default="model", min_length=1, max_length=250)
    source_run_id: str | None = None
    model_type: str = ""
    params: list[RegistryKeyValue] = []
    tags: list[RegistryKeyValue] = []


@router.post("/logged-models", response_model=schemas.LoggedModelAnswer)
def create_logged_model(body: CreateLoggedModel, request: Request) -> Response:
    from ferryml.server.mlflow.tracking import resolve_experiment

    model = _part(request).create_logged_model(
        resolve_experiment(request, body.experiment_id),
        body.name,
        source_run_id=body.source_run_id,
        model_type=body.model_type,
        tags={t.key: t.value for t in body.tags},
        params={p.key: p.value for p in body.params},
    )
    return j.ok({"model": j.logged_model(model)})


@router.get("/logged-models/{model_id}", response_model=schemas.LoggedModelAnswer)
def get_logged_model(model_id: str, request: Request) -> Response:
    return j.ok({"model": j.logged_model(_part(request).get_logged_model(model_id))})


class FinalizeModel(_Body):
    status: str = Field(pattern=r"^LOGGED_MODEL_(PENDING|READY|UPLOAD_FAILED)$")


@router.patch("/logged-models/{model_id}", response_model=schemas.LoggedModelAnswer)
def finalize_logged_model(model_id: str, body: FinalizeModel, request: Request) -> Response:
    model = _part(request).update_logged_model(model_id, status=body.status)
    return j.ok({"model": j.logged_model(model)})


@router.delete("/logged-models/{model_id}", response_model=schemas.Empty)
def delete_logged_model(model_id: str, request: Request) -> Response:
    _part(request).delete_logged_model(model_id)
    return j.ok()


class ModelTags(_Body):
    tags: list[RegistryKeyValue] = []


@router.patch("/logged-models/{model_id}/tags", response_model=schemas.Empty)
def set_logged_model_tags(model_id: str, body: ModelTags, request: Request) -> Response:
    _part(request).set_logged_model_tags(model_id, {t.key: t.value for t in body.tags})
    return j.ok()


@router.delete("/logged-models/{model_id}/tags/{key:path}", response_model=schemas.Empty)
def delete_logged_model_tag(model_id: str, key: str, request: Request) -> Response:
    _part(request).set_logged_model_tags(model_id, {}, remove=[key])
    return j.ok()


class LoggedModelOrder(_Body):
    field_name: str = ""
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class SearchLoggedModels(_Body):
    experiment_ids: list[str] = []
    filter: str | None = None
    max_results: int = Field(default=1000, ge=1, le=50_000)
    order_by: list[LoggedModelOrder] = []  # accepted; models come newest first
    page_token: str | None = None


_MODEL_FIELDS = ("name", "model_id", "source_run_id", "status", "model_type", "creation_time")


@router.post("/logged-models/search", response_model=schemas.LoggedModelsPage)
def search_logged_models(body: SearchLoggedModels, request: Request) -> Response:
    from ferryml.server.mlflow.tracking import resolve_experiment

    clauses = _filters.parse(body.filter, _MODEL_FIELDS)
    ids = [resolve_experiment(request, e) for e in body.experiment_ids]
    found = [
        m
        for m in _part(request).search_logged_models(ids)
        if _filters.matches(clauses, m.__dict__, m.tags)
    ]
    page, token = _page(found, body.max_results, body.page_token)
    return j.ok({"models": [j.logged_model(m) for m in page], "next_page_token": token})


# -- registered models ---------------------------------------------------------------------


class CreateModel(_Body):
    name: str = Field(min_length=1, max_length=256)
    tags: list[RegistryKeyValue] = []
    description: str = ""


@router.post("/registered-models/create", response_model=schemas.RegisteredModelAnswer)
def create_registered_model(body: CreateModel, request: Request) -> Response:
    from ferryml.registry.models import check_model_name

    check_model_name(body.name)
    tags = {t.key: t.value for t in body.tags}
    _part(request).create_registered_model(body.name, description=body.description, tags=tags)
    return j.ok({"registered_model": _model_json(request, body.name)})


@router.get("/registered-models/get", response_model=schemas.RegisteredModelAnswer)
def get_registered_model(name: str, request: Request) -> Response:
    return j.ok({"registered_model": _model_json(request, name)})


# MLflow's order_by names; its SQL store takes timestamp for last_updated_timestamp.
_MODEL_ORDER = {
    "name": "name",
    "timestamp": "last_update_time",
    "last_updated_timestamp": "last_update_time",
    "creation_timestamp": "creation_time",
}


@router.get("/registered-models/search", response_model=schemas.RegisteredModelsPage)
def search_registered_models(
    request: Request,
    filter: str | None = None,
    max_results: int = 100,
    order_by: Annotated[list[str] | None, Query()] = None,
    page_token: str | None = None,
) -> Response:
    clauses = _filters.parse(filter, ("name", "creation_timestamp", "last_updated_timestamp"))
    models = [
        m
        for m in _registry(request).list_registered_models()
        if _filters.matches(clauses, {"name": m.name}, m.tags)
    ]
    models = _filters.order(models, order_by, getattr, _MODEL_ORDER)
    page, token = _page(models, max_results, page_token)
    return j.ok(
        {
            "registered_models": [_model_json(request, m.name, m) for m in page],
            "next_page_token": token,
        }
    )


class UpdateModel(_Body):
    name: str
    description: str = ""


@router.patch("/registered-models/update", response_model=schemas.RegisteredModelAnswer)
def update_registered_model(body: UpdateModel, request: Request) -> Response:
    _registry(request).get_registered_model(body.name)
    _part(request).update_registered_model(body.name, description=body.description)
    return j.ok({"registered_model": _model_json(request, body.name)})


class ModelName(_Body):
    name: str


@router.delete("/registered-models/delete", response_model=schemas.Empty)
def delete_registered_model(body: ModelName, request: Request) -> Response:
    maintainer_of(request, "model", body.name)
    _registry(request).delete_registered_model(body.name, user=current_user())
    return j.ok()


class ModelTag(_Body):
    name: str
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(default="", max_length=8000)


@router.post("/registered-models/set-tag", response_model=schemas.Empty)
def set_registered_model_tag(body: ModelTag, request: Request) -> Response:
    _registry(request).get_registered_model(body.name)
    _registry(request).set_tag(body.name, 0, body.key, body.value)
    return j.ok()


class ModelTagKey(_Body):
    name: str
    key: str


@router.delete("/registered-models/delete-tag", response_model=schemas.Empty)
def delete_registered_model_tag(body: ModelTagKey, request: Request) -> Response:
    _part(request).delete_model_tag(body.name, 0, body.key)
    return j.ok()


class MlflowSetAlias(_Body):
    name: str
    alias: str = Field(min_length=1, max_length=250)
    version: str


@router.post("/registered-models/alias", response_model=schemas.Empty)
def set_alias(body: MlflowSetAlias, request: Request) -> Response:
    maintainer_of(request, "model", body.name)
    _registry(request).set_alias(body.name, body.alias, _number(body.version), user=current_user())
    return j.ok()


@router.get("/registered-models/alias", response_model=schemas.ModelVersionAnswer)
def get_alias(name: str, alias: str, request: Request) -> Response:
    registry = _registry(request)
    try:
        number = registry.resolve_alias(name, alias)
    except NotFound as e:  # MLflow answers 400 here
        raise InvalidArgument(str(e)) from e
    return j.ok({"model_version": j.model_version(registry.get_model_version(name, number))})


class AliasRef(_Body):
    name: str
    alias: str


@router.delete("/registered-models/alias", response_model=schemas.Empty)
def delete_alias(body: AliasRef, request: Request) -> Response:
    maintainer_of(request, "model", body.name)
    _registry(request).delete_alias(body.name, body.alias, user=current_user())
    return j.ok()


class LatestVersions(_Body):
    name: str
    stages: list[str] = []


@router.post("/registered-models/get-latest-versions", response_model=schemas.ModelVersionsList)
def get_latest_versions(body: LatestVersions, request: Request) -> Response:
    versions = _registry(request).list_model_versions(body.name)
    latest = [max(versions, key=lambda v: v.version)] if versions else []
    return j.ok({"model_versions": [j.model_version(v) for v in latest]})


@router.get("/registered-models/get-latest-versions", response_model=schemas.ModelVersionsList)
def get_latest_versions_get(name: str, request: Request) -> Response:
    return get_latest_versions(LatestVersions(name=name), request)


# -- model versions ------------------------------------------------------------------------


class MlflowCreateVersion(_Body):
    name: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=4000)
    run_id: str | None = None
    model_id: str | None = None
    tags: list[RegistryKeyValue] = []
    description: str = ""


@router.post("/model-versions/create", response_model=schemas.ModelVersionAnswer)
def create_model_version(body: MlflowCreateVersion, request: Request) -> Response:
    from ferryml.registry.models import check_model_name

    check_model_name(body.name)
    digest, flavor, signature, run_id = _package(request, body)
    registry = _registry(request)
    version = registry.create_model_version(
        body.name,
        package_digest=digest,
        flavor=flavor,
        source=body.source,
        run_id=run_id,
        user=current_user(),
        signature=signature,
        description=body.description,
    )
    for tag in body.tags:
        registry.set_tag(body.name, version.version, tag.key, tag.value)
    version = registry.get_model_version(body.name, version.version)
    return j.ok({"model_version": j.model_version(version)})


@router.get("/model-versions/get", response_model=schemas.ModelVersionAnswer)
def get_model_version(name: str, version: str, request: Request) -> Response:
    found = _registry(request).get_model_version(name, _number(version))
    return j.ok({"model_version": j.model_version(found)})


class MlflowUpdateVersion(_Body):
    name: str
    version: str
    description: str | None = None


@router.patch("/model-versions/update", response_model=schemas.ModelVersionAnswer)
def update_model_version(body: MlflowUpdateVersion, request: Request) -> Response:
    registry = _registry(request)
    number = _number(body.version)
    if body.description is not None:
        registry.update_model_version(
            body.name, number, user=current_user(), description=body.description
        )
    return j.ok({"model_version": j.model_version(registry.get_model_version(body.name, number))})


class VersionRef(_Body):
    name: str
    version: str


@router.delete("/model-versions/delete", response_model=schemas.Empty)
def delete_model_version(body: VersionRef, request: Request) -> Response:
    maintainer_of(request, "model", body.name)
    _registry(request).delete_model_version(body.name, _number(body.version), user=current_user())
    return j.ok()


_VERSION_FIELDS = ("name", "version_number", "run_id", "source_path", "source")
# ferryml keeps no update time for a version; answers give creation_time for both.
_VERSION_ORDER = {
    "name": "name",
    "version_number": "version",
    "creation_timestamp": "creation_time",
    "last_updated_timestamp": "creation_time",
}


@router.get("/model-versions/search", response_model=schemas.ModelVersionsPage)
def search_model_versions(
    request: Request,
    filter: str | None = None,
    max_results: int = 10_000,
    order_by: Annotated[list[str] | None, Query()] = None,
    page_token: str | None = None,
) -> Response:
    clauses = _filters.parse(filter, _VERSION_FIELDS)
    registry = _registry(request)
    names = [c[3] for c in clauses if c[:3] == ("attribute", "name", "=")]
    models = names or [m.name for m in registry.list_registered_models()]
    versions: list[ModelVersion] = []
    for name in models:
        try:
            versions += registry.list_model_versions(name)
        except NotFound:
            continue
    found = [v for v in versions if _filters.matches(clauses, _version_fields(v), v.tags)]
    found.sort(key=lambda v: (v.name, -v.version))  # MLflow's order where order_by ties
    found = _filters.order(found, order_by, getattr, _VERSION_ORDER)
    page, token = _page(found, max_results, page_token)
    return j.ok({"model_versions": [j.model_version(v) for v in page], "next_page_token": token})


@router.get("/model-versions/get-download-uri", response_model=schemas.DownloadUri)
def get_download_uri(name: str, version: str, request: Request) -> Response:
    found = _registry(request).get_model_version(name, _number(version))
    uri = found.source
    if uri.startswith("models:/m-"):
        model = _part(request).get_logged_model(uri[len("models:/") :])
        uri = j.logged_model(model)["info"]["artifact_uri"]
    return j.ok({"artifact_uri": uri})


class VersionTag(_Body):
    name: str
    version: str
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(default="", max_length=8000)


@router.post("/model-versions/set-tag", response_model=schemas.Empty)
def set_model_version_tag(body: VersionTag, request: Request) -> Response:
    registry = _registry(request)
    number = _number(body.version)
    registry.get_model_version(body.name, number)
    registry.set_tag(body.name, number, body.key, body.value)
    return j.ok()


class VersionTagKey(_Body):
    name: str
    version: str
    key: str


@router.delete("/model-versions/delete-tag", response_model=schemas.Empty)
def delete_model_version_tag(body: VersionTagKey, request: Request) -> Response:
    _part(request).delete_model_tag(body.name, _number(body.version), body.key)
    return j.ok()


# -- helpers -------------------------------------------------------------------------------


def _number(version: str) -> int:
    try:
        number = int(version)
        if 1 <= number < 2**31:
            return number
    except (TypeError, ValueError):
        pass
    raise InvalidArgument(f"Model version {version!r} is not a whole number from 1.")


def _version_fields(v: ModelVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version_number": v.version,
        "run_id": v.run_id,
        "source_path": v.source,
        "source": v.source,
    }


def _model_json(request: Request, name: str, model: Any = None) -> dict[str, Any]:
    registry = _registry(request)
    model = model or registry.get_registered_model(name)
    latest = []
    if model.latest_version is not None:
        latest = [registry.get_model_version(name, model.latest_version)]
    return j.registered_model(model, latest)


def _package(
    request: Request, body: MlflowCreateVersion
) -> tuple[str, str, str | None, str | None]:
    """The package digest, flavor, signature JSON and run of what ``source`` names: a
    logged model (``models:/m-...``), a run's folder (``runs:/RUN/PATH``), or an
    ``mlflow-artifacts:`` URI this server handed out."""
    import json

    from ferryml.registry.mlmodel import package_mlmodel
    from ferryml.registry.package import METADATA, PackageMeta

    artifacts = request.app.state.artifacts
    source, run_id = body.source, body.run_id
    model_id = body.model_id
    if model_id is None and source.startswith("models:/m-"):
        model_id = source[len("models:/") :]
    if model_id is not None:
        model = _part(request).get_logged_model(model_id)
        run_id = run_id or model.source_run_id
        files = {p: (d, s) for p, d, s in _part(request).list_model_files(model_id)}
    elif source.startswith(("runs:/", "mlflow-artifacts:")):
        if source.startswith("runs:/"):
            run_id, _, folder = source[len("runs:/") :].partition("/")
        else:
            kind, owner, folder = locate(source.split(":", 1)[1].lstrip("/"))
            if kind != "run":
                logged = MlflowCreateVersion(name=body.name, source=f"models:/{owner}")
                return _package(request, logged)
            run_id = owner
        folder = folder.strip("/")
        listed = request.app.state.tracking.list_artifacts(run_id, folder)
        start = f"{folder}/" if folder else ""
        files = {a.path[len(start) :]: (a.digest, a.size) for a in listed}
        if METADATA in files:  # a model ferryml's own client logged
            digest = files[METADATA][0]
            meta = PackageMeta.from_bytes(artifacts.get_bytes(digest), digest)
            signature = json.dumps(meta.signature) if meta.signature else None
            return digest, meta.flavor, signature, run_id
    else:
        raise InvalidArgument(
            f"Model source {source!r} is not understood: register a logged model "
            "(models:/m-...) or a run's folder (runs:/RUN_ID/PATH)."
        )
    try:
        digest, meta = package_mlmodel(artifacts, files)
    except InvalidArgument as e:
        raise InvalidArgument(f"Cannot register {source!r}: {e}") from e
    signature = json.dumps(meta.signature) if meta.signature else None
    return digest, meta.flavor, signature, run_id
