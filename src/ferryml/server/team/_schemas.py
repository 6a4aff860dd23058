"""Request bodies and the few response shapes that are not the store's own dataclasses
(those serve as response models directly, so the OpenAPI document types every field)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from ferryml.store.entities import Role, Run, ViewType
from ferryml.tracking import _validation as check

__all__ = [
    "CreateExperiment",
    "CreateRun",
    "CreatedExperiment",
    "CreateToken",
    "CreateUser",
    "CreatedToken",
    "KillRuns",
    "Lifecycle",
    "MetricPoints",
    "Reason",
    "RecordBatch",
    "RunKeysOut",
    "SearchRuns",
    "SearchResult",
    "SetAlias",
    "SetWeights",
    "TablePreview",
    "UpdateUser",
    "Written",
]

_KEY = Field(min_length=1, max_length=250)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateExperiment(_Body):
    name: str = Field(min_length=1, max_length=256)
    tags: dict[str, str] = {}


class CreatedExperiment(BaseModel):
    experiment_id: str


class CreateRun(_Body):
    experiment_id: str
    run_name: str = Field(max_length=250)
    start_time: int = Field(ge=0)
    description: str = ""
    parent_run_id: str | None = None
    tags: dict[str, str] = {}
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class Lifecycle(_Body):
    lifecycle_stage: Literal["active", "deleted"]


class KillRuns(_Body):
    run_ids: list[str] = Field(max_length=10_000)


# The journal's records by kind, each as the tuple of its fields (store/records.py), checked
# as the client checks them before journaling: the server takes no one's word for it.
RunId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-. /:]{1,250}$")]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(max_length=8000)]
Status = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
# Paths that climb out ('..', absolute) would let a download write outside its folder.
ArtifactPath = Annotated[
    str, StringConstraints(max_length=1000), AfterValidator(check.check_artifact_path)
]


class RecordBatch(_Body):
    metrics: list[tuple[RunId, Key, Int64, Int64, float, bool]] = []  # step, time, value, nan
    params: list[tuple[RunId, Key, Annotated[str, StringConstraints(max_length=6000)]]] = []
    tags: list[tuple[RunId, Key, Text]] = []
    artifacts: list[
        tuple[RunId, Annotated[str, StringConstraints(max_length=1000)], Digest, Int64]
    ] = []
    inputs: list[
        tuple[RunId, Key, Key, Annotated[str, StringConstraints(max_length=64)], Text]
    ] = []
    starts: list[RunId] = []  # run ids this client started
    ends: list[tuple[RunId, Status, Int64 | None, Text | None]] = []  # status, end time, failure


class Written(BaseModel):
    records: int


class SearchRuns(_Body):
    experiment_ids: list[str] = Field(min_length=1, max_length=1000)
    filter: str | None = None
    order_by: list[str] | None = None
    max_results: int = Field(default=1000, ge=1, le=50_000)
    offset: int = Field(default=0, ge=0)
    view: ViewType = ViewType.ACTIVE_ONLY


class SearchResult(BaseModel):
    runs: list[Run]
    next_offset: int | None


class SetAlias(_Body):
    version: int = Field(ge=1)
    reason: str = ""


class Reason(_Body):
    reason: str = ""


class SetWeights(_Body):
    weights: dict[str, float]
    reason: str = ""


class CreateUser(_Body):
    name: str
    role: Role


class UpdateUser(_Body):
    role: Role | None = None
    disabled: bool | None = None


class CreateToken(_Body):
    user: str | None = None  # admins may create tokens for others
    label: str = Field(default="", max_length=250)


class CreatedToken(BaseModel):
    token_id: str
    user: str
    token: str  # shown once


class MetricPoints(BaseModel):
    """A metric's points as columns, downsampled; ``total`` is how many it has in all."""

    key: str
    total: int
    step: list[int]
    time: list[int]
    value: list[float | None]


class RunKeysOut(BaseModel):
    params: list[str]
    metrics: list[str]
    tags: list[str]


class TablePreview(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
