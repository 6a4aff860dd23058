"""Datasets, the step cache and schedules over HTTP: the same interfaces as their SQL
stores, answered by a team server (``ferry server``). The factory picks them for an
``http(s)://`` store URL."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from ferryml.errors import NotFound
from ferryml.store.entities import CachedOutput, DatasetVersion, Schedule
from ferryml.store.http import _as, _Part

__all__ = ["HttpDatasetStore", "HttpScheduleStore", "HttpStepCache"]


def _dataset(name: str) -> str:
    # Dataset names hold '/' (they are named after paths): kept as path segments.
    return f"/api/v1/datasets/{quote(name, safe='/')}/versions"


class HttpDatasetStore(_Part):
    """``DatasetStore`` over a team server; adding and deleting versions needs a writer."""

    def create_dataset_version(
        self,
        name: str,
        *,
        kind: str,
        manifest_digest: str,
        files: int,
        size: int,
        source: str = "",
        rows: int | None = None,
        schema: str | None = None,
        profile_digest: str | None = None,
        run_id: str | None = None,
    ) -> DatasetVersion:
        body = {
            "kind": kind,
            "manifest_digest": manifest_digest,
            "files": files,
            "size": size,
            "source": source,
            "rows": rows,
            "schema": schema,
            "profile_digest": profile_digest,
            "run_id": run_id,
        }
        version: DatasetVersion = _as(
            DatasetVersion, self.client.call("POST", _dataset(name), body)
        )
        return version

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        found = self.client.call("GET", f"{_dataset(name)}/{version or 'latest'}")
        got: DatasetVersion = _as(DatasetVersion, found)
        return got

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        found: list[DatasetVersion] = _as(
            list[DatasetVersion], self.client.call("GET", _dataset(name))
        )
        return found

    def list_datasets(self) -> list[DatasetVersion]:
        found: list[DatasetVersion] = _as(
            list[DatasetVersion], self.client.call("GET", "/api/v1/datasets")
        )
        return found

    def delete_dataset_version(self, name: str, version: int) -> None:
        self.client.call("DELETE", f"{_dataset(name)}/{version}")


class HttpStepCache(_Part):
    """``StepCache`` over a team server; recording an output needs a writer."""

    def get(self, cache_key: str) -> CachedOutput | None:
        try:
            found = self.client.call("GET", f"/api/v1/pipelines/cache/{cache_key}")
        except NotFound:
            return None
        output: CachedOutput = _as(CachedOutput, found)
        return output

    def put(self, cache_key: str, step: str, digest: str, fmt: str, run_id: str | None) -> None:
        body = {"step": step, "digest": digest, "format": fmt, "run_id": run_id}
        self.client.call("PUT", f"/api/v1/pipelines/cache/{cache_key}", body)


class HttpScheduleStore(_Part):
    """``ScheduleStore`` over a team server: adding and removing schedules needs a
    maintainer, claiming and recording their runs (the scheduler's work) a writer."""

    def create_schedule(
        self,
        name: str,
        *,
        target: str,
        cron: str,
        params: Mapping[str, str],
        next_run_time: int,
        creation_time: int,
    ) -> Schedule:
        body = {
            "name": name,
            "target": target,
            "cron": cron,
            "params": dict(params),
            "next_run_time": next_run_time,
            "creation_time": creation_time,
        }
        created: Schedule = _as(Schedule, self.client.call("POST", "/api/v1/schedules", body))
        return created

    def get_schedule(self, name: str) -> Schedule:
        found: Schedule = _as(Schedule, self.client.call("GET", f"/api/v1/schedules/{name}"))
        return found

    def list_schedules(self) -> list[Schedule]:
        found: list[Schedule] = _as(list[Schedule], self.client.call("GET", "/api/v1/schedules"))
        return found

    def delete_schedule(self, name: str) -> None:
        self.client.call("DELETE", f"/api/v1/schedules/{name}")

    def list_due(self, now_ms: int) -> list[Schedule]:
        found = self.client.call("GET", "/api/v1/schedules", params={"due_at": now_ms})
        due: list[Schedule] = _as(list[Schedule], found)
        return due

    def claim(self, name: str, *, due: int, next_run_time: int, now_ms: int) -> Schedule | None:
        body = {"due": due, "next_run_time": next_run_time, "now_ms": now_ms}
        found = self.client.call("POST", f"/api/v1/schedules/{name}/claim", body)
        claimed: Schedule | None = _as(Schedule | None, found["schedule"])
        return claimed

    def record_result(
        self, name: str, run_id: str | None, status: str, *, run_time: int | None = None
    ) -> bool:
        body = {"run_id": run_id, "status": status, "run_time": run_time}
        return bool(self.client.call("POST", f"/api/v1/schedules/{name}/result", body)["recorded"])
