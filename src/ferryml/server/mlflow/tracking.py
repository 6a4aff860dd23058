"""MLflow's tracking routes (``/api/2.0/mlflow/experiments/...``, ``runs/...``,
``metrics/get-history``) over ferryml's tracking store: a run the MLflow client logs is a
ferryml run, and the other way round."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ferryml._identity import current_user
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.server.mlflow import _filters
from ferryml.server.mlflow import _json as j
from ferryml.server.mlflow import _schemas as schemas
from ferryml.server.mlflow._errors import MlflowRoute
from ferryml.store.entities import Run, RunStatus, ViewType
from ferryml.store.records import (
    EndRecord,
    MetricRecord,
    ParamRecord,
    Record,
    TagRecord,
    metric_record,
)
from ferryml.store.sql_mlflow import DatasetInput, SqlMlflowStore
from ferryml.tracking import _validation as check

__all__ = ["router"]

router = APIRouter(route_class=MlflowRoute, tags=["mlflow"], responses=schemas.ERRORS)

_VIEWS = {
    "ACTIVE_ONLY": ViewType.ACTIVE_ONLY,
    "DELETED_ONLY": ViewType.DELETED_ONLY,
    "ALL": ViewType.ALL,
}
MAX_PARAM_VALUE = 10_000  # MLflow's server took 9,000 characters
_STATUSES = {"SCHEDULED": RunStatus.RUNNING, **{s.value: s for s in RunStatus}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KeyValue(_Body):
    key: schemas.KeyIn
    value: str = ""


class RunRef(_Body):
    run_id: str | None = None
    run_uuid: str | None = None

    @property
    def id(self) -> str:
        found = self.run_id or self.run_uuid
        if not found:
            raise InvalidArgument("Missing value for required parameter 'run_id'.")
        return found


class ExperimentRef(_Body):
    experiment_id: str


def _store(request: Request) -> Any:
    return request.app.state.tracking


def mlflow_part(request: Request) -> SqlMlflowStore:
    return SqlMlflowStore(request.app.state.tracking)


def resolve_experiment(request: Request, given: str) -> str:
    """MLflow's default experiment "0" is ferryml's "Default" (made on first use)."""
    if given != "0":
        return given
    store = _store(request)
    found = store.get_experiment_by_name("Default")
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(store.create_experiment("Default"))
    except AlreadyExists:  # another request made it meanwhile
        return str(store.get_experiment_by_name("Default").experiment_id)


def _view(value: str | None) -> ViewType:
    try:
        return _VIEWS[(value or "ACTIVE_ONLY").upper()]
    except KeyError:
        raise InvalidArgument(
            f"Invalid view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL."
        ) from None


# -- experiments ---------------------------------------------------------------------------


class MlflowCreateExperiment(_Body):
    name: str = Field(min_length=1, max_length=256)
    artifact_location: str | None = None  # ignored: ferry server keeps every artifact
    tags: list[KeyValue] = []


@router.post("/experiments/create", response_model=schemas.ExperimentCreated)
def create_experiment(body: MlflowCreateExperiment, request: Request) -> Response:
    tags = {t.key: t.value for t in body.tags}
    return j.ok({"experiment_id": _store(request).create_experiment(body.name, tags)})


@router.get("/experiments/get", response_model=schemas.ExperimentAnswer)
def get_experiment(experiment_id: str, request: Request) -> Response:
    found = _store(request).get_experiment(resolve_experiment(request, experiment_id))
    return j.ok({"experiment": j.experiment(found)})


@router.get("/experiments/get-by-name", response_model=schemas.ExperimentAnswer)
def get_experiment_by_name(experiment_name: str, request: Request) -> Response:
    found = _store(request).get_experiment_by_name(experiment_name)
    if found is None:
        raise NotFound(f"Experiment {experiment_name!r} does not exist.")
    return j.ok({"experiment": j.experiment(found)})


class SearchExperiments(_Body):
    max_results: int = Field(default=1000, ge=1, le=50_000)
    view_type: str | None = None
    filter: str | None = None
    order_by: list[str] = []
    page_token: str | None = None


_EXPERIMENT_FIELDS = ("name", "experiment_id", "creation_time", "last_update_time")


@router.post("/experiments/search", response_model=schemas.ExperimentsPage)
def search_experiments(body: SearchExperiments, request: Request) -> Response:
    clauses = _filters.parse(body.filter, _EXPERIMENT_FIELDS)
    found = [
        e
        for e in _store(request).list_experiments(_view(body.view_type))
        if _filters.matches(clauses, e.__dict__, e.tags)
    ]
    ordered = _filters.order(
        sorted(found, key=lambda e: (-e.creation_time, int(e.experiment_id))),
        body.order_by,
        lambda e, field: int(e.experiment_id) if field == "experiment_id" else getattr(e, field),
        {field: field for field in _EXPERIMENT_FIELDS},  # MLflow's server orders by these
    )
    start = j.offset_of(body.page_token)
    page = ordered[start : start + body.max_results]
    more = start + body.max_results < len(ordered)
    return j.ok(
        {
            "experiments": [j.experiment(e) for e in page],
            "next_page_token": j.page_token(start + body.max_results if more else None),
        }
    )


@router.get("/experiments/search", response_model=schemas.ExperimentsPage)
def search_experiments_get(
    request: Request,
    max_results: int = 1000,
    view_type: str | None = None,
    filter: str | None = None,
    page_token: str | None = None,
) -> Response:
    body = SearchExperiments(
        max_results=max_results, view_type=view_type, filter=filter, page_token=page_token
    )
    return search_experiments(body, request)


@router.post("/experiments/delete", response_model=schemas.Empty)
def delete_experiment(body: ExperimentRef, request: Request) -> Response:
    _store(request).update_experiment(body.experiment_id, lifecycle_stage="deleted")
    return j.ok()


@router.post("/experiments/restore", response_model=schemas.Empty)
def restore_experiment(body: ExperimentRef, request: Request) -> Response:
    _store(request).update_experiment(body.experiment_id, lifecycle_stage="active")
    return j.ok()


class RenameExperiment(ExperimentRef):
    new_name: str = Field(min_length=1, max_length=256)


@router.post("/experiments/update", response_model=schemas.Empty)
def update_experiment(body: RenameExperiment, request: Request) -> Response:
    mlflow_part(request).rename_experiment(body.experiment_id, body.new_name)
    return j.ok()


class ExperimentTag(ExperimentRef):
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(default="", max_length=check.MAX_TAG_VALUE)


@router.post("/experiments/set-experiment-tag", response_model=schemas.Empty)
def set_experiment_tag(body: ExperimentTag, request: Request) -> Response:
    mlflow_part(request).set_experiment_tag(body.experiment_id, body.key, body.value)
    return j.ok()


class ExperimentTagKey(ExperimentRef):
    key: str


@router.post("/experiments/delete-experiment-tag", response_model=schemas.Empty)
def delete_experiment_tag(body: ExperimentTagKey, request: Request) -> Response:
    mlflow_part(request).delete_experiment_tag(body.experiment_id, body.key)
    return j.ok()


# -- runs ----------------------------------------------------------------------------------


class MlflowCreateRun(_Body):
    experiment_id: str = "0"
    user_id: str | None = None  # the token's user is recorded, never the client's word
    start_time: int | None = None
    run_name: str | None = Field(default=None, max_length=250)
    tags: list[KeyValue] = []


@router.post("/runs/create", response_model=schemas.RunAnswer)
def create_run(body: MlflowCreateRun, request: Request) -> Response:
    from ferryml.tracking._names import random_name

    tags = {t.key: t.value for t in body.tags}
    for key, value in tags.items():
        check.check_key(key, "Tag")
        check.check_value(key, value, "Tag", check.MAX_TAG_VALUE)
    name = body.run_name or tags.get("mlflow.runName") or random_name()
    tags["mlflow.runName"] = name
    start = body.start_time if body.start_time is not None else int(time.time() * 1000)
    info = _store(request).create_run(
        resolve_experiment(request, body.experiment_id),
        run_name=name,
        start_time=check.check_timestamp("start_time", start),
        user=current_user(),
        description=tags.get("mlflow.note.content", ""),
        parent_run_id=tags.get("mlflow.parentRunId") or None,
        tags=tags,
    )
    return j.ok({"run": _run_json(request, _store(request).get_run(info.run_id))})


@router.get("/runs/get", response_model=schemas.RunAnswer)
def get_run(request: Request, run_id: str | None = None, run_uuid: str | None = None) -> Response:
    run = _store(request).get_run(RunRef(run_id=run_id, run_uuid=run_uuid).id)
    return j.ok({"run": _run_json(request, run)})


class UpdateRun(RunRef):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = Field(default=None, max_length=250)


@router.post("/runs/update", response_model=schemas.RunInfoAnswer)
def update_run(body: UpdateRun, request: Request) -> Response:
    run_id = body.id
    store = _store(request)
    store.get_run_info(run_id)
    if body.run_name:
        mlflow_part(request).rename_run(run_id, body.run_name)
    if body.status:
        status = _STATUSES.get(body.status.upper())
        if status is None:
            raise InvalidArgument(
                f"Invalid run status {body.status!r}: use RUNNING, FINISHED, FAILED or KILLED."
            )
        end = body.end_time if body.end_time is not None else int(time.time() * 1000)
        end_time = check.check_timestamp("end_time", end) if status.is_terminal else None
        store.write_records([EndRecord(run_id, status.value, end_time, None)])
    return j.ok({"run_info": j.run_info(store.get_run_info(run_id))})


@router.post("/runs/delete", response_model=schemas.Empty)
def delete_run(body: RunRef, request: Request) -> Response:
    _store(request).update_run(body.id, lifecycle_stage="deleted")
    return j.ok()


@router.post("/runs/restore", response_model=schemas.Empty)
def restore_run(body: RunRef, request: Request) -> Response:
    _store(request).update_run(body.id, lifecycle_stage="active")
    return j.ok()


class LogMetric(RunRef):
    key: schemas.KeyIn
    value: schemas.MetricValueIn
    timestamp: int | None = None
    step: int = 0


@router.post("/runs/log-metric", response_model=schemas.Empty)
def log_metric(body: LogMetric, request: Request) -> Response:
    mlflow_part(request).write_records(body.id, [_metric(body.id, body)])
    return j.ok()


class LogParam(RunRef):
    key: schemas.KeyIn
    value: str = ""


@router.post("/runs/log-parameter", response_model=schemas.Empty)
def log_param(body: LogParam, request: Request) -> Response:
    mlflow_part(request).write_records(body.id, _params(request, body.id, [body]))
    return j.ok()


@router.post("/runs/set-tag", response_model=schemas.Empty)
def set_tag(body: LogParam, request: Request) -> Response:
    mlflow_part(request).write_records(body.id, [_tag(body.id, body)])
    if body.key == "mlflow.runName":
        mlflow_part(request).rename_run(body.id, body.value)
    return j.ok()


class DeleteTag(RunRef):
    key: schemas.KeyIn


@router.post("/runs/delete-tag", response_model=schemas.Empty)
def delete_tag(body: DeleteTag, request: Request) -> Response:
    mlflow_part(request).delete_run_tag(_active_run(request, body.id), body.key)
    return j.ok()


class MetricItem(_Body):
    key: schemas.KeyIn
    value: schemas.MetricValueIn
    timestamp: int | None = None
    step: int = 0


class LogBatch(RunRef):
    metrics: list[MetricItem] = Field(default=[], max_length=1000)
    params: list[KeyValue] = Field(default=[], max_length=100)
    tags: list[KeyValue] = Field(default=[], max_length=100)


@router.post("/runs/log-batch", response_model=schemas.Empty)
def log_batch(body: LogBatch, request: Request) -> Response:
    """Metrics, params and tags in one transaction (the client sends up to 1,000 metrics
    and 100 params a call, and with ``synchronous=False`` in any order)."""
    run_id = body.id
    records: list[Record] = [_metric(run_id, m) for m in body.metrics]
    records += _params(request, run_id, body.params)
    records += [_tag(run_id, t) for t in body.tags]
    mlflow_part(request).write_records(run_id, records)
    if any(t.key == "mlflow.runName" for t in body.tags):
        name = next(t.value for t in reversed(body.tags) if t.key == "mlflow.runName")
        mlflow_part(request).rename_run(run_id, name)
    return j.ok()


class Dataset(_Body):
    name: str = Field(min_length=1, max_length=500)
    digest: str = Field(min_length=1, max_length=64)
    source_type: str = ""
    source: str = ""
    schema_: str = Field(default="", alias="schema")
    profile: str = ""


class DatasetInputBody(_Body):
    tags: list[KeyValue] = []
    dataset: Dataset


class LogInputs(RunRef):
    datasets: list[DatasetInputBody] = Field(default=[], max_length=1000)


@router.post("/runs/log-inputs", response_model=schemas.Empty)
def log_inputs(body: LogInputs, request: Request) -> Response:
    run_id = _active_run(request, body.id)
    inputs = [
        DatasetInput(
            d.dataset.name,
            d.dataset.digest,
            d.dataset.source_type,
            d.dataset.source,
            d.dataset.schema_,
            d.dataset.profile,
            {t.key: t.value for t in d.tags},
        )
        for d in body.datasets
    ]
    mlflow_part(request).log_inputs(run_id, inputs)
    return j.ok()


@router.post("/runs/outputs", response_model=schemas.Empty)
def log_outputs(body: RunRef, request: Request) -> Response:
    """Accepted: a run's logged models are found by the run that made them."""
    _store(request).get_run_info(body.id)
    return j.ok()


class MlflowSearchRuns(_Body):
    experiment_ids: list[str] = Field(default=[], max_length=1000)
    filter: str | None = None
    run_view_type: str | None = None
    max_results: int = Field(default=1000, ge=1, le=50_000)
    order_by: list[str] = []
    page_token: str | None = None


@router.post("/runs/search", response_model=schemas.RunsPage)
def search_runs(body: MlflowSearchRuns, request: Request) -> Response:
    runs, next_offset = _store(request).search_runs(
        [resolve_experiment(request, e) for e in body.experiment_ids],
        body.filter or "",
        body.order_by,
        body.max_results,
        j.offset_of(body.page_token),
        _view(body.run_view_type),
    )
    return j.ok({"runs": _runs_json(request, runs), "next_page_token": j.page_token(next_offset)})


@router.get("/metrics/get-history", response_model=schemas.MetricsPage)
def metric_history(
    request: Request,
    metric_key: str,
    run_id: str | None = None,
    run_uuid: str | None = None,
    max_results: int = 25_000,
    page_token: str | None = None,
) -> Response:
    """A run's values of one metric; ``{}`` for a run or key with none (as MLflow)."""
    try:
        history = _store(request).get_metric_history(
            RunRef(run_id=run_id, run_uuid=run_uuid).id, metric_key
        )
    except NotFound:
        return j.ok()
    start = j.offset_of(page_token)
    size = max(1, min(max_results, 25_000))
    more = start + size < len(history)
    return j.ok(
        {
            "metrics": [j.metric(m) for m in history[start : start + size]],
            "next_page_token": j.page_token(start + size if more else None),
        }
    )


@router.get("/artifacts/list", response_model=schemas.RunArtifactList)
def list_artifacts(
    request: Request,
    run_id: str | None = None,
    run_uuid: str | None = None,
    path: str = "",
) -> Response:
    """The older listing by run (the client lists through mlflow-artifacts now)."""
    from ferryml.server.mlflow.artifacts import children

    run = _store(request).get_run_info(RunRef(run_id=run_id, run_uuid=run_uuid).id)
    entries = [(a.path, a.size) for a in _store(request).list_artifacts(run.run_id, path)]
    files = [
        {**f, "path": f"{path.strip('/')}/{f['path']}".lstrip("/")} for f in children(entries, path)
    ]
    root = j.artifact_uri(run.experiment_id, run.run_id)
    return j.ok({"root_uri": root, "files": files})


# -- helpers -------------------------------------------------------------------------------


def _active_run(request: Request, run_id: str) -> str:
    info = _store(request).get_run_info(run_id)
    if info.lifecycle_stage != "active":
        raise InvalidArgument(
            f"The run {run_id} must be in the 'active' state. Current state is "
            f"{info.lifecycle_stage}."
        )
    return run_id


def _metric(run_id: str, m: LogMetric | MetricItem) -> MetricRecord:
    key = check.check_key(m.key, "Metric")
    timestamp = m.timestamp if m.timestamp is not None else int(time.time() * 1000)
    return metric_record(
        run_id,
        key,
        j.metric_value(m.value),
        check.check_timestamp(key, timestamp),
        check.check_step(key, m.step),
    )


def _params(request: Request, run_id: str, items: list[Any]) -> list[ParamRecord]:
    """Params, refused when one would change a value already logged (as MLflow)."""
    logged = _store(request).get_params(run_id) if items else {}
    records = []
    for item in items:
        key = check.check_key(item.key, "Param")
        value = check.check_value(key, item.value, "Param", MAX_PARAM_VALUE)
        if key in logged and logged[key] != value:
            raise InvalidArgument(
                f"Changing param values is not allowed. Param with key={key!r} was already "
                f"logged with value={logged[key]!r} for run ID={run_id!r}. Attempted logging "
                f"new value {value!r}."
            )
        records.append(ParamRecord(run_id, key, value))
    return records


def _tag(run_id: str, item: Any) -> TagRecord:
    key = check.check_key(item.key, "Tag")
    return TagRecord(run_id, key, check.check_value(key, item.value, "Tag", check.MAX_TAG_VALUE))


def _run_json(request: Request, run: Run) -> dict[str, Any]:
    return _runs_json(request, [run])[0]


def _runs_json(request: Request, runs: list[Run]) -> list[dict[str, Any]]:
    part = mlflow_part(request)
    ids = [r.run_id for r in runs]
    metrics = part.latest_metric_rows(ids) if ids else {}
    inputs = part.list_inputs(ids) if ids else {}
    models = part.models_of_runs(ids) if ids else {}
    return [
        j.run(r, metrics.get(r.run_id, []), inputs.get(r.run_id, []), models.get(r.run_id, []))
        for r in runs
    ]
