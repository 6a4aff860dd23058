"""The answers of MLflow's routes as pydantic models, for the OpenAPI document only: the
routes build their JSON with ``_json`` and orjson (a search's thousand runs through
pydantic cost more than the search), so these models are the shapes ``_json`` writes,
field for field, and a test checks real answers against them. A field with a default is
one MLflow's JSON leaves out when it is empty."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

__all__ = [
    "ArtifactList",
    "DownloadUri",
    "ERRORS",
    "Empty",
    "ExperimentAnswer",
    "ExperimentCreated",
    "ExperimentsPage",
    "LoggedModelAnswer",
    "LoggedModelsPage",
    "KeyIn",
    "MetricValueIn",
    "MetricsPage",
    "MlflowError",
    "ModelVersionAnswer",
    "ModelVersionsList",
    "ModelVersionsPage",
    "RegisteredModelAnswer",
    "RegisteredModelsPage",
    "RunAnswer",
    "RunArtifactList",
    "RunInfoAnswer",
    "RunsPage",
    "ServerInfo",
]

# A metric value as the client sends it. Checked by ``_json.metric_value``, not pydantic,
# which would take a bool or a numeric string as a number.
MetricValueIn = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
            ],
            "description": "A number, or NaN and the infinities as strings",
        }
    ),
]
# A metric, param or tag key: documented with its rule (checked by ``check_key``, which
# also names what is wrong in a key).
KeyIn = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z0-9_\\-. :][A-Za-z0-9_\\-. /:]{0,249}$",
            "description": "Letters, digits, spaces and _ - . / :, not starting with /",
        }
    ),
]
_TOKEN = Field(default="", description="Absent on the last page; send it back for the next")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Empty(_Out):
    """MLflow's answer that carries nothing: ``{}``."""


class MlflowError(_Out):
    """MLflow's error: the client reads ``error_code`` and shows ``message``."""

    error_code: str = Field(examples=["RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"])
    message: str


class MlflowKeyValue(_Out):
    key: str
    value: str


class MlflowMetric(_Out):
    key: str
    value: float | Literal["NaN", "Infinity", "-Infinity"]
    timestamp: int
    step: int


class MlflowExperiment(_Out):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: Literal["active", "deleted"]
    creation_time: int = 0
    last_update_time: int = 0
    tags: list[MlflowKeyValue] = []


class ExperimentAnswer(_Out):
    experiment: MlflowExperiment


class ExperimentCreated(_Out):
    experiment_id: str


class ExperimentsPage(_Out):
    experiments: list[MlflowExperiment] = []
    next_page_token: str = _TOKEN


class MlflowRunInfo(_Out):
    run_id: str
    run_uuid: str = Field(description="The same as run_id (MLflow's older name)")
    experiment_id: str
    run_name: str
    user_id: str
    status: Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
    start_time: int
    end_time: int = Field(default=0, description="Absent while the run runs")
    artifact_uri: str
    lifecycle_stage: Literal["active", "deleted"]


class MlflowRunData(_Out):
    metrics: list[MlflowMetric] = Field(default=[], description="The latest value of each key")
    params: list[MlflowKeyValue] = []
    tags: list[MlflowKeyValue] = []


class Dataset(_Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema_: str = Field(default="", alias="schema", description="JSON, as a string")
    profile: str = Field(default="", description="JSON, as a string")


class DatasetInput(_Out):
    tags: list[MlflowKeyValue] = []
    dataset: Dataset


class RunInputs(_Out):
    dataset_inputs: list[DatasetInput] = []


class ModelOutput(_Out):
    model_id: str
    step: int


class RunOutputs(_Out):
    model_outputs: list[ModelOutput] = []


class MlflowRun(_Out):
    info: MlflowRunInfo
    data: MlflowRunData
    inputs: RunInputs
    outputs: RunOutputs


class RunAnswer(_Out):
    run: MlflowRun


class RunInfoAnswer(_Out):
    run_info: MlflowRunInfo


class RunsPage(_Out):
    runs: list[MlflowRun] = []
    next_page_token: str = _TOKEN


class MetricsPage(_Out):
    metrics: list[MlflowMetric] = []
    next_page_token: str = _TOKEN


class FileInfo(_Out):
    path: str
    is_dir: bool
    file_size: int = Field(default=0, description="Absent for a folder")


class ArtifactList(_Out):
    """A folder's entries; ``{}`` when the path is a file or nothing."""

    files: list[FileInfo] = []


class RunArtifactList(_Out):
    root_uri: str
    files: list[FileInfo] = []


class ServerInfo(_Out):
    store_type: str
    workspaces_enabled: bool
    multipart_uploads_enabled: bool
    multipart_downloads_enabled: bool


class LoggedModelInfo(_Out):
    model_id: str
    experiment_id: str
    name: str
    artifact_uri: str
    status: Literal["LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"]
    model_type: str = ""
    source_run_id: str = ""
    creation_timestamp_ms: int
    last_updated_timestamp_ms: int
    tags: list[MlflowKeyValue] = []


class LoggedModelData(_Out):
    params: list[MlflowKeyValue] = []


class LoggedModel(_Out):
    info: LoggedModelInfo
    data: LoggedModelData


class LoggedModelAnswer(_Out):
    model: LoggedModel


class LoggedModelsPage(_Out):
    models: list[LoggedModel] = []
    next_page_token: str = _TOKEN


class MlflowModelVersion(_Out):
    name: str
    version: str
    creation_timestamp: int
    last_updated_timestamp: int
    current_stage: str
    description: str
    source: str
    run_id: str = ""
    status: Literal["READY"]
    run_link: str = ""
    tags: list[MlflowKeyValue] = []
    aliases: list[str] = []
    model_id: str = Field(default="", description="For a version made from a logged model")


class ModelVersionAnswer(_Out):
    model_version: MlflowModelVersion


class ModelVersionsList(_Out):
    model_versions: list[MlflowModelVersion] = []


class ModelVersionsPage(_Out):
    model_versions: list[MlflowModelVersion] = []
    next_page_token: str = _TOKEN


class Alias(_Out):
    alias: str
    version: str


class MlflowRegisteredModel(_Out):
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str = ""
    tags: list[MlflowKeyValue] = []
    latest_versions: list[MlflowModelVersion] = []
    aliases: list[Alias] = []


class RegisteredModelAnswer(_Out):
    registered_model: MlflowRegisteredModel


class RegisteredModelsPage(_Out):
    registered_models: list[MlflowRegisteredModel] = []
    next_page_token: str = _TOKEN


class DownloadUri(_Out):
    artifact_uri: str


# Every MLflow route's failures, in the shape the client reads (its 5xx are retried).
ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": MlflowError, "description": "MLflow's error: bad input, not found, …"},
    "5XX": {"model": MlflowError, "description": "The store is unavailable; try again"},
}
