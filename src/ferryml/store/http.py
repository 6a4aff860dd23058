"""The stores over HTTP: the same interfaces as the SQL stores, answered by a team server
(``ferry server``). Chosen by the factory when the store URL is ``http(s)://``.

Errors come back as the types the SQL stores raise (the server's error body names them),
so callers cannot tell the two apart.
"""

from __future__ import annotations

import http.client
import itertools
import json
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import httpx

from ferryml import errors
from ferryml.config import DEFAULT_SERVER_RETRY
from ferryml.errors import FerryError, StoreUnavailable
from ferryml.store.entities import (
    ArtifactEntry,
    Experiment,
    Metric,
    ModelVersion,
    RegisteredModel,
    RegistryEvent,
    Role,
    Run,
    RunInfo,
    Token,
    User,
    ViewType,
)
from ferryml.store.records import Record, batch_of_records

__all__ = [
    "HttpDeploymentStore",
    "HttpRegistryStore",
    "HttpTrackingStore",
    "HttpUserStore",
    "ServerClient",
]


class ServerClient:
    """One connection pool to a team server, sending the token on every request.

    Requests that change nothing, or failed before they were sent, are retried for
    ``retry_seconds``: long enough for a server restart, so that the end of a run waits
    rather than fails (``Settings.server_retry``)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 60.0,
        retry_seconds: float = DEFAULT_SERVER_RETRY,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(
        self, method: str, path: str, body: Any = None, *, idempotent: bool = False, **kwargs: Any
    ) -> Any:
        """Send a request; its JSON answer, or None for an empty one. ``idempotent``: the
        request may be sent again (as GET and HEAD may), so a lost connection or a 503 (the
        server's database away) is retried for a while instead of failing.

        Raises:
            FerryError: the type the server named (NotFound, PermissionDenied, ...).
            StoreUnavailable: the server cannot be reached, or failed.
        """
        if body is not None:
            # NaN and infinite metric values travel as Python's json spells them.
            kwargs["content"] = json.dumps(body, separators=(",", ":"))
            kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
        response = self.send(method, path, idempotent=idempotent, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return json.loads(response.content)

    @contextmanager
    def stream(
        self, path: str, headers: Mapping[str, str], *, signed: bool = False
    ) -> Iterator[http.client.HTTPResponse]:
        """A GET of ``path`` (or of a full URL the server ``signed``, sent without the
        token) whose body is read into the caller's buffer (``readinto``): through httpx,
        a large body cost four times the CPU in copies. An error answer raises its
        ferryml type; a lost connection raises OSError or http.client's errors."""
        url = urllib.parse.urlsplit(path if signed else self.url + path)
        if url.scheme == "https":
            context = httpx.create_ssl_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.netloc, timeout=self.timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(url.netloc, timeout=self.timeout)
        target = url.path + (f"?{url.query}" if url.query else "")
        try:
            conn.request("GET", target, headers={**({} if signed else self.headers), **headers})
            response = conn.getresponse()
            if response.status >= 400:
                body = response.read()
                raise _error_of(httpx.Response(response.status, content=body))
            yield response
        finally:
            conn.close()

    def send(
        self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any
    ) -> httpx.Response:
        safe = idempotent or method in ("GET", "HEAD")
        deadline = time.monotonic() + self.retry_seconds
        for attempt in itertools.count():
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                error: Exception = e
            except httpx.TransportError as e:
                if not safe:
                    raise self._unreachable(e) from e
                error = e
            else:
                if response.status_code < 400 or response.status_code == 404 and method == "HEAD":
                    return response
                last = time.monotonic() >= deadline
                if response.status_code != 503 or not safe or last:
                    raise _error_of(response)
                error = _error_of(response)
            if time.monotonic() >= deadline:
                raise self._unreachable(error) from error
            time.sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def backoff(attempt: int) -> float:
        """Seconds to wait before retrying after ``attempt`` failures in a row (from 0)."""
        return min(0.1 * 2**attempt, 2.0)

    def _unreachable(self, e: Exception) -> StoreUnavailable:
        if isinstance(e, StoreUnavailable):
            return e
        return StoreUnavailable(
            f"Cannot reach the ferryml server at {self.url}: {e}. Check that `ferry server` "
            "runs there and FERRY_TRACKING_URI names it."
        )


def _error_of(response: httpx.Response) -> FerryError:
    try:
        error = response.json()["error"]
        kind, message = str(error["type"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "", f"HTTP {response.status_code}: {response.text[:200]}"
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, FerryError):
        return cls(message)
    by_status: dict[int, type[FerryError]] = {
        401: errors.Unauthenticated,
        403: errors.PermissionDenied,
        404: errors.NotFound,
        409: errors.Conflict,
        422: errors.InvalidArgument,
    }
    return by_status.get(response.status_code, StoreUnavailable)(
        f"The ferryml server answered: {message}"
    )


@lru_cache(maxsize=64)
def _adapter(kind: Any) -> Any:
    # Built once per type: building one takes about 10 ms, far longer than a request.
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def _as(kind: Any, data: Any) -> Any:
    return _adapter(kind).validate_python(data)


class _Part:
    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def close(self) -> None:
        self.client.close()


class HttpTrackingStore(_Part):
    """``TrackingStore`` over a team server."""

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        body = {"name": name, "tags": dict(tags or {})}
        return str(self.client.call("POST", "/api/v1/experiments", body)["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        return _as(Experiment, self.client.call("GET", f"/api/v1/experiments/{experiment_id}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self.client.call("GET", "/api/v1/experiments", params={"name": name})
        return _as(Experiment, found[0]) if found else None

    def list_experiments(self, view_type: ViewType = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        found = self.client.call("GET", "/api/v1/experiments", params={"view": view_type.value})
        return _as(list[Experiment], found)

    def update_experiment(self, experiment_id: str, *, lifecycle_stage: str) -> Experiment:
        body = {"lifecycle_stage": lifecycle_stage}
        return _as(
            Experiment, self.client.call("PATCH", f"/api/v1/experiments/{experiment_id}", body)
        )

    def delete_experiment(self, experiment_id: str) -> None:
        self.client.call("DELETE", f"/api/v1/experiments/{experiment_id}")

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        start_time: int,
        user: str,
        description: str = "",
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> RunInfo:
        # ``user`` is the server's to say: it records the token's user.
        body = {
            "experiment_id": str(experiment_id),
            "run_name": run_name,
            "start_time": start_time,
            "description": description,
            "parent_run_id": parent_run_id,
            "tags": dict(tags or {}),
            "run_id": run_id,
        }
        return _as(RunInfo, self.client.call("POST", "/api/v1/runs", body))

    def get_run(self, run_id: str) -> Run:
        run: Run = _as(Run, self.client.call("GET", f"/api/v1/runs/{run_id}"))
        return run

    def get_run_info(self, run_id: str) -> RunInfo:
        return self.get_run(run_id).info

    def get_params(self, run_id: str) -> dict[str, str]:
        return dict(self.get_run(run_id).data.params)

    def update_run(self, run_id: str, *, lifecycle_stage: str) -> RunInfo:
        body = {"lifecycle_stage": lifecycle_stage}
        return _as(RunInfo, self.client.call("PATCH", f"/api/v1/runs/{run_id}", body))

    def delete_run(self, run_id: str) -> None:
        self.client.call("DELETE", f"/api/v1/runs/{run_id}")

    def write_records(self, records: Sequence[Record]) -> None:
        if records:
            # A batch sent twice is stored once.
            self.client.call(
                "POST", "/api/v1/records", batch_of_records(list(records)), idempotent=True
            )

    def mark_killed(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        if ids:
            self.client.call("POST", "/api/v1/runs/killed", {"run_ids": ids})

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        found = self.client.call("GET", f"/api/v1/runs/{run_id}/metrics/{key}")
        return _as(list[Metric], found)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        found = self.client.call(
            "GET", f"/api/v1/runs/{run_id}/artifacts", params={"prefix": prefix}
        )
        return _as(list[ArtifactEntry], found)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = "",
        order_by: Sequence[str] | None = (),
        max_results: int = 1000,
        offset: int = 0,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
    ) -> tuple[list[Run], int | None]:
        body = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "filter": filter_string or "",
            "order_by": list(order_by or ()),
            "max_results": max_results,
            "offset": offset,
            "view": run_view_type.value,
        }
        found = self.client.call("POST", "/api/v1/runs/search", body)
        runs: list[Run] = _as(list[Run], found["runs"])
        return runs, found["next_offset"]


class HttpRegistryStore(_Part):
    """The registry's store over a team server; moving an alias needs a maintainer."""

    def create_model_version(
        self,
        name: str,
        *,
        package_digest: str,
        flavor: str,
        source: str,
        run_id: str | None,
        user: str,
        signature: str | None = None,
        data_versions: tuple[str, ...] = (),
        profile_digest: str | None = None,
        description: str = "",
    ) -> ModelVersion:
        body = {
            "package_digest": package_digest,
            "flavor": flavor,
            "source": source,
            "run_id": run_id,
            "signature": signature,
            "data_versions": list(data_versions),
            "profile_digest": profile_digest,
            "description": description,
        }
        return _as(ModelVersion, self.client.call("POST", f"/api/v1/models/{name}/versions", body))

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        return _as(
            ModelVersion, self.client.call("GET", f"/api/v1/models/{name}/versions/{version}")
        )

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        found = self.client.call("GET", f"/api/v1/models/{name}/versions")
        return _as(list[ModelVersion], found)

    def delete_model_version(self, name: str, version: int, *, user: str, reason: str = "") -> None:
        path = f"/api/v1/models/{name}/versions/{version}"
        self.client.call("DELETE", path, params={"reason": reason})

    def delete_registered_model(self, name: str, *, user: str, reason: str = "") -> None:
        self.client.call("DELETE", f"/api/v1/models/{name}", params={"reason": reason})

    def update_model_version(
        self,
        name: str,
        version: int,
        *,
        user: str,
        status: str | None = None,
        description: str | None = None,
        metrics: Mapping[str, float] | None = None,
        reason: str = "",
    ) -> ModelVersion:
        body = {
            "status": status,
            "description": description,
            "metrics": dict(metrics) if metrics is not None else None,
            "reason": reason,
        }
        path = f"/api/v1/models/{name}/versions/{version}"
        return _as(ModelVersion, self.client.call("PATCH", path, body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _as(RegisteredModel, self.client.call("GET", f"/api/v1/models/{name}"))

    def list_registered_models(self) -> list[RegisteredModel]:
        return _as(list[RegisteredModel], self.client.call("GET", "/api/v1/models"))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        user: str,
        reason: str = "",
        evidence: Mapping[str, Any] | None = None,
        action: str = "set_alias",
    ) -> int | None:
        body = {
            "version": version,
            "reason": reason,
            "evidence": dict(evidence) if evidence is not None else None,
            "action": action,
        }
        answer = self.client.call("PUT", f"/api/v1/models/{name}/aliases/{alias}", body)
        previous: int | None = answer["previous"]
        return previous

    def delete_alias(self, name: str, alias: str, *, user: str, reason: str = "") -> None:
        path = f"/api/v1/models/{name}/aliases/{alias}"
        self.client.call("DELETE", path, params={"reason": reason})

    def resolve_alias(self, name: str, alias: str) -> int:
        return int(self.client.call("GET", f"/api/v1/models/{name}/aliases/{alias}")["version"])

    def record_refusal(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        champion: int | None,
        user: str,
        reason: str = "",
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        body = {
            "version": version,
            "champion": champion,
            "reason": reason,
            "evidence": dict(evidence) if evidence is not None else None,
        }
        self.client.call("POST", f"/api/v1/models/{name}/aliases/{alias}/refusals", body)

    def promote(
        self,
        name: str,
        candidate: int,
        *,
        alias: str,
        rows: bytes,
        target: str,
        task: str | None,
        force: bool,
        reason: str,
        slices: Sequence[str],
    ) -> dict[str, Any]:
        """Have the server judge the promotion (gates.promote_on_rows) on ``rows``
        (Parquet), sent first as a blob, with its own gate; its decision, as a mapping."""
        from ferryml.store.http_artifacts import HttpArtifactStore

        digest = HttpArtifactStore(self.client).put_bytes(rows).digest
        body = {
            "candidate": candidate,
            "alias": alias,
            "rows": digest,
            "target": target,
            "task": task,
            "force": force,
            "reason": reason,
            "slices": list(slices),
        }
        return dict(self.client.call("POST", f"/api/v1/models/{name}/promotions", body))

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        path = f"/api/v1/models/{name}/versions/{version}/tags/{key}"
        self.client.call("PUT", path, {"value": value})

    def events(self, name: str) -> list[RegistryEvent]:
        return _as(list[RegistryEvent], self.client.call("GET", f"/api/v1/models/{name}/events"))


class HttpDeploymentStore(_Part):
    """Deployments over a team server: reading needs a reader, changes a maintainer."""

    def get(self, name: str) -> dict[str, Any]:
        found = dict(self.client.call("GET", f"/api/v1/deployments/{name}"))
        found.pop("name", None)
        return found

    def list_deployments(self) -> list[tuple[str, dict[str, Any]]]:
        found = self.client.call("GET", "/api/v1/deployments")
        return [(d.pop("name"), d) for d in found]

    def create(self, name: str, spec: dict[str, Any], *, user: str, reason: str = "") -> None:
        self.client.call(
            "POST",
            f"/api/v1/deployments/{name}/spec",
            {"spec": spec, "reason": reason, "action": "create"},
        )

    def update(
        self, name: str, spec: dict[str, Any], *, action: str, user: str, reason: str = ""
    ) -> dict[str, Any]:
        body = {"spec": spec, "reason": reason, "action": action}
        before: dict[str, Any] = self.client.call("POST", f"/api/v1/deployments/{name}/spec", body)
        return before

    def events(self, name: str) -> list[Any]:
        from ferryml.store.sql_deployments import DeploymentEvent

        return _as(
            list[DeploymentEvent], self.client.call("GET", f"/api/v1/deployments/{name}/history")
        )


class HttpUserStore(_Part):
    """Users and tokens through a team server (an admin's token manages others')."""

    def create_user(self, name: str, role: Role) -> User:
        return _as(
            User, self.client.call("POST", "/api/v1/users", {"name": name, "role": role.value})
        )

    def list_users(self) -> list[User]:
        return _as(list[User], self.client.call("GET", "/api/v1/users"))

    def update_user(
        self, name: str, *, role: Role | None = None, disabled: bool | None = None
    ) -> User:
        body = {"role": role.value if role else None, "disabled": disabled}
        return _as(User, self.client.call("PATCH", f"/api/v1/users/{name}", body))

    def create_token(self, user: str, label: str = "") -> tuple[Token, str]:
        made = self.client.call("POST", "/api/v1/tokens", {"user": user, "label": label})
        token = Token(made["token_id"], made["user"], label, int(time.time() * 1000), None)
        return token, str(made["token"])

    def list_tokens(self, user: str | None = None) -> list[Token]:
        tokens: list[Token] = _as(list[Token], self.client.call("GET", "/api/v1/tokens"))
        return [t for t in tokens if user is None or t.user == user]

    def revoke_token(self, token_id: str) -> Token:
        return _as(Token, self.client.call("DELETE", f"/api/v1/tokens/{token_id}"))

    def add_maintainer(self, kind: str, name: str, user: str) -> None:
        self.client.call("PUT", f"/api/v1/maintainers/{kind}/{name}/{user}")

    def remove_maintainer(self, kind: str, name: str, user: str) -> None:
        self.client.call("DELETE", f"/api/v1/maintainers/{kind}/{name}/{user}")

    def list_maintainers(self, kind: str, name: str) -> list[str]:
        return list(self.client.call("GET", f"/api/v1/maintainers/{kind}/{name}"))

    def whoami(self) -> User:
        return _as(User, self.client.call("GET", "/api/v1/whoami"))
