"""Request bodies and the few response shapes that are not the store's own dataclasses
(those serve as response models directly, so the OpenAPI document types every field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ferryml.store.entities import Role, Run, ViewType

__all__ = [
    "CreateExperiment",
    "CreateRun",
    "CreatedExperiment",
    "CreateToken",
    "CreateUser",
    "CreatedToken",
    "KillRuns",
    "Lifecycle",
    "Reason",
    "RecordBatch",
    "SearchRuns",
    "SearchResult",
    "SetAlias",
    "SetWeights",
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


# The journal's records by kind, each as the tuple of its fields (store/records.py).
class RecordBatch(_Body):
    metrics: list[tuple[str, str, int, int, float, bool]] = []  # run, key, step, time, value, nan
    params: list[tuple[str, str, str]] = []  # run, key, value
    tags: list[tuple[str, str, str]] = []  # run, key, value
    artifacts: list[tuple[str, str, str, int]] = []  # run, path, digest, size
    inputs: list[tuple[str, str, str, str, str]] = []  # run, dataset, version, digest, context
    starts: list[str] = []  # run ids this client started
    ends: list[tuple[str, str, int | None, str | None]] = []  # run, status, end time, failure


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
