"""Reading a running ``mlflow server`` through its REST API: searches page by page, metric
histories per key, artifacts through its artifact proxy (``mlflow-artifacts:`` URIs)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from ferryml.errors import (
    FerryError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    Unauthenticated,
)
from ferryml.imports._mlflow_types import (
    MetricRow,
    SourceLoggedModel,
    SourceModel,
    SourceRun,
    SourceVersion,
    latest_values,
    local_files,
    run_status,
)
from ferryml.store.entities import Experiment, RegisteredModel, Run, RunData, RunInfo
from ferryml.store.sql_mlflow import DatasetInput, LoggedModel

__all__ = ["RestSource"]

_API = "/api/2.0/mlflow/"
_PROXY = "/api/2.0/mlflow-artifacts/artifacts"


class _Retry(Exception):
    """A 5xx answer or a dropped connection: worth another try."""


class RestSource:
    """An MLflow tracking server, read only, through the API its client uses."""

    def __init__(
        self,
        url: str,
        artifacts_root: str | None = None,
        timeout: float = 60,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.artifacts_root = artifacts_root
        self.problems: list[str] = []
        auth, verify = _client_settings(os.environ if environ is None else environ)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, auth=auth, verify=verify)
        self._metric_keys: dict[str, list[str]] = {}  # run id -> its metrics' keys
        self._inputs: dict[str, list[DatasetInput]] = {}
        self._experiment_ids: list[str] = []

    def open(self) -> RestSource:
        try:
            self._call("GET", "experiments/search", params={"max_results": 1})
        except StoreUnavailable:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._http.close()

    @retry(
        retry=retry_if_exception_type(_Retry),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=5),
        reraise=True,
    )
    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            answer = self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise _Retry(f"{type(e).__name__}: {e}") from e
        if answer.status_code >= 500:
            raise _Retry(f"HTTP {answer.status_code}: {answer.text[:200]}")
        return answer

    def _call(self, method: str, endpoint: str, **kw: Any) -> dict[str, Any]:
        try:
            answer = self._send(method, _API + endpoint, **kw)
        except _Retry as e:
            raise StoreUnavailable(
                f"The MLflow server at {self.url} did not answer {endpoint} ({e}). Is "
                "`mlflow server` running there?"
            ) from e
        if answer.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in answer.text:
            raise NotFound(f"{endpoint}: {_message(answer)}")
        if answer.status_code in (401, 403):
            raise _refused(self.url, answer)
        if answer.status_code != 200:
            raise InvalidArgument(
                f"The MLflow server at {self.url} refused {endpoint}: HTTP {answer.status_code} "
                f"{_message(answer)}"
            )
        try:
            body = answer.json() if answer.content else {}
        except ValueError as e:
            raise StoreUnavailable(
                f"{self.url} answered {endpoint} with something other than JSON: is it an "
                "MLflow server?"
            ) from e
        return body if isinstance(body, dict) else {}

    def _pages(self, method: str, endpoint: str, field: str, **request: Any) -> Iterator[Any]:
        token = None
        while True:
            if method == "GET":
                body = self._call(method, endpoint, params={**request, "page_token": token or ""})
            else:
                page = {**request, **({"page_token": token} if token else {})}
                body = self._call(method, endpoint, json=page)
            yield from body.get(field, [])
            token = body.get("next_page_token")
            if not token:
                return

    # -- tracking ------------------------------------------------------------------------

    def experiments(self) -> list[Experiment]:
        found = [
            Experiment(
                str(e["experiment_id"]),
                e["name"],
                e.get("lifecycle_stage", "active"),
                int(e.get("creation_time", 0)),
                int(e.get("last_update_time", e.get("creation_time", 0))),
                _pairs(e.get("tags")),
            )
            for e in self._pages(
                "POST", "experiments/search", "experiments", max_results=1000, view_type="ALL"
            )
        ]
        self._experiment_ids = [e.experiment_id for e in found]
        return found

    def runs(self, experiment_id: str) -> Iterator[SourceRun]:
        for r in self._pages(
            "POST",
            "runs/search",
            "runs",
            experiment_ids=[experiment_id],
            run_view_type="ALL",
            max_results=1000,
            order_by=["attributes.start_time ASC"],
        ):
            i, data = r["info"], r.get("data", {})
            tags = _pairs(data.get("tags"))
            run_id = i["run_id"]
            info = RunInfo(
                run_id,
                experiment_id,
                i.get("run_name") or tags.get("mlflow.runName") or run_id[:8],
                run_status(i.get("status", "FINISHED")),
                int(i.get("start_time", 0)),
                int(i["end_time"]) if i.get("end_time") is not None else None,
                i.get("lifecycle_stage", "active"),
                tags.get("mlflow.parentRunId") or None,
                i.get("user_id", ""),
                tags.get("mlflow.note.content", ""),
                None,
            )
            self._metric_keys[run_id] = [m["key"] for m in data.get("metrics", [])]
            self._inputs[run_id] = [
                _dataset(d) for d in r.get("inputs", {}).get("dataset_inputs", [])
            ]
            run = Run(info, RunData(_pairs(data.get("params")), {}, tags))
            yield SourceRun(run, i.get("artifact_uri", ""))

    def history(self, run_id: str) -> Sequence[MetricRow]:
        rows: list[MetricRow] = []
        for key in self._metric_keys.get(run_id, []):
            for m in self._pages(
                "GET",
                "metrics/get-history",
                "metrics",
                run_id=run_id,
                metric_key=key,
                max_results=25_000,
            ):
                value = float(m["value"])  # "NaN" and "Infinity" arrive as strings
                step, timestamp = int(m.get("step", 0)), int(m.get("timestamp", 0))
                if math.isnan(value):
                    rows.append((run_id, key, step, timestamp, 0.0, True))
                else:
                    rows.append((run_id, key, step, timestamp, value, False))
        return rows

    def latest(self, run_id: str) -> dict[str, float]:
        return latest_values(self.history(run_id))

    def inputs(self, run_id: str) -> list[DatasetInput]:
        return self._inputs.get(run_id, [])

    def logged_models(self) -> list[SourceLoggedModel]:
        if not self._experiment_ids:
            return []
        found = []
        for m in self._pages(
            "POST", "logged-models/search", "models", experiment_ids=self._experiment_ids
        ):
            i = m["info"]
            model = LoggedModel(
                i["model_id"],
                str(i["experiment_id"]),
                i.get("name", ""),
                i.get("source_run_id") or None,
                i.get("status", "LOGGED_MODEL_READY"),
                i.get("model_type", ""),
                int(i.get("creation_timestamp_ms", 0)),
                int(i.get("last_updated_timestamp_ms", i.get("creation_timestamp_ms", 0))),
                _pairs(i.get("tags")),
                _pairs(m.get("data", {}).get("params")),
            )
            found.append(SourceLoggedModel(model, i.get("artifact_uri", "")))
        return sorted(found, key=lambda m: m.model.creation_time)

    # -- registry ------------------------------------------------------------------------

    def registered_models(self) -> list[SourceModel]:
        found = []
        for m in self._pages(
            "GET", "registered-models/search", "registered_models", max_results=1000
        ):
            name = m["name"]
            versions = []
            escaped = name.replace("'", "\\'")
            for v in self._pages(
                "GET",
                "model-versions/search",
                "model_versions",
                filter=f"name='{escaped}'",
                max_results=10_000,
            ):
                where = self._call(
                    "GET",
                    "model-versions/get-download-uri",
                    params={"name": name, "version": v["version"]},
                )
                versions.append(
                    SourceVersion(
                        int(v["version"]),
                        v.get("source", ""),
                        v.get("run_id") or None,
                        v.get("description", ""),
                        int(v.get("creation_timestamp", 0)),
                        where.get("artifact_uri", ""),
                        _pairs(v.get("tags")),
                    )
                )
            created = int(m.get("creation_timestamp", 0))
            model = RegisteredModel(
                name,
                m.get("description", ""),
                created,
                int(m.get("last_updated_timestamp", created)),
                {a["alias"]: int(a["version"]) for a in m.get("aliases", [])},
                _pairs(m.get("tags")),
            )
            found.append(SourceModel(model, sorted(versions, key=lambda v: v.version)))
        return found

    # -- artifacts -----------------------------------------------------------------------

    def files(self, uri: str) -> Iterator[tuple[str, Path]]:
        parsed = urlparse(uri)
        if parsed.scheme != "mlflow-artifacts":
            yield from local_files(uri, self.artifacts_root)
            return
        base = parsed.path.strip("/")
        with tempfile.TemporaryDirectory(prefix="ferry-mlflow-") as scratch:
            copy = Path(scratch) / "file"
            for relative in self._walk(base, ""):
                self._download(f"{base}/{relative}", copy)
                yield relative, copy

    def _walk(self, base: str, relative: str) -> Iterator[str]:
        """Paths of the files under ``base/relative``, relative to ``base``."""
        folder = f"{base}/{relative}".rstrip("/")
        answer = self._proxy("GET", _PROXY, params={"path": folder})
        if answer.status_code == 404:
            return
        listed = answer.json().get("files", []) if answer.content else []
        for entry in sorted(listed, key=lambda e: e["path"]):
            path = f"{relative}/{entry['path']}".lstrip("/")
            if entry.get("is_dir"):
                yield from self._walk(base, path)
            else:
                yield path

    def _download(self, path: str, dest: Path) -> None:
        url = f"{_PROXY}/{quote(path)}"
        try:
            with self._http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    answer.read()
                    raise NotFound(
                        f"artifact {path} could not be downloaded: HTTP {answer.status_code} "
                        f"{_message(answer)}"
                    )
                with dest.open("wb") as out:
                    for chunk in answer.iter_bytes(1 << 20):
                        out.write(chunk)
        except httpx.TransportError as e:
            raise StoreUnavailable(
                f"artifact {path} could not be downloaded from {self.url}: {e}"
            ) from e

    def _proxy(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            answer = self._send(method, path, **kw)
        except _Retry as e:
            raise StoreUnavailable(f"The MLflow server at {self.url} did not answer ({e})") from e
        if answer.status_code in (401, 403):
            raise _refused(self.url, answer)
        if answer.status_code not in (200, 404):
            raise InvalidArgument(
                f"The MLflow server at {self.url} refused to list {kw.get('params')}: HTTP "
                f"{answer.status_code} {_message(answer)}"
            )
        return answer


def _client_settings(environ: Mapping[str, str]) -> tuple[httpx.Auth | None, bool | str]:
    """Credentials and TLS checks from the variables the mlflow client reads: a user name
    and password (Basic) before a token (Bearer), as the mlflow client chooses."""
    user = environ.get("MLFLOW_TRACKING_USERNAME")
    password = environ.get("MLFLOW_TRACKING_PASSWORD")
    token = environ.get("MLFLOW_TRACKING_TOKEN")
    auth: httpx.Auth | None = None
    if user and password:
        auth = httpx.BasicAuth(user, password)
    elif token:
        auth = _Bearer(token)
    verify: bool | str = environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    if environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true"):
        verify = False
    return auth, verify


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _refused(url: str, answer: httpx.Response) -> FerryError:
    if answer.status_code == 401:
        return Unauthenticated(
            f"The MLflow server at {url} asks for credentials (HTTP 401: {_message(answer)}). "
            "Set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, as for the mlflow client."
        )
    return PermissionDenied(
        f"The MLflow server at {url} does not let these credentials read its history "
        f"(HTTP 403: {_message(answer)}). Use a user that may read every experiment."
    )


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("message", ""))[:300]
    except ValueError:
        return answer.text[:200]


def _pairs(items: Any) -> dict[str, str]:
    return {p["key"]: p.get("value", "") for p in items or []}


def _dataset(d: dict[str, Any]) -> DatasetInput:
    s = d.get("dataset", {})
    return DatasetInput(
        s.get("name", ""),
        s.get("digest", ""),
        s.get("source_type", ""),
        s.get("source", ""),
        s.get("schema", ""),
        s.get("profile", ""),
        _pairs(d.get("tags")),
    )
