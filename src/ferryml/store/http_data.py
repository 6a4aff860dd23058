"""Datasets, the step cache and schedules over HTTP: the same interfaces as their SQL
stores, answered by a team server (``ferry server``). The factory picks them for an
``http(s)://`` store URL."""

from __future__ import annotations

from urllib.parse import quote

from ferryml.store.entities import DatasetVersion
from ferryml.store.http import _as, _Part

__all__ = ["HttpDatasetStore"]


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
