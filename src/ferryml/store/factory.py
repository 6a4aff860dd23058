"""The one place that builds stores from settings: the SQL stores for ``sqlite:`` and
``postgresql:`` URLs, the HTTP stores for a team server's ``http(s):`` URL. The core asks
here and cannot tell the two apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ferryml.errors import InvalidArgument

if TYPE_CHECKING:
    from ferryml.config import Settings
    from ferryml.store.base import DatasetStore, TrackingStore
    from ferryml.store.sql import SqlStore, StorePart

__all__ = [
    "is_server_url",
    "open_artifact_store",
    "open_dataset_store",
    "open_deployment_store",
    "open_registry_store",
    "open_sql_part",
    "open_sql_store",
    "open_tracking_store",
    "open_user_store",
    "shared_part",
]

P = TypeVar("P", bound="StorePart")


def is_server_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _client(settings: Settings, url: str | None = None) -> Any:
    from ferryml.store.http import ServerClient

    return ServerClient(
        url or settings.store_url, settings.token, retry_seconds=settings.server_retry
    )


def open_sql_store(settings: Settings) -> SqlStore:
    """The SQL store itself, for parts that only a database answers (yet).

    Raises:
        InvalidArgument: the store is a team server.
    """
    from ferryml.store.sql import SqlStore

    if is_server_url(settings.store_url):
        raise InvalidArgument(
            f"This command works on the database itself, not through the team server "
            f"{settings.store_url}: run it on the server's host, or set FERRY_STORE to "
            "the database URL."
        )
    return SqlStore(settings.store_url).open()


def open_sql_part(settings: Settings, part: type[P]) -> P:
    """A part of the SQL store (monitors, alerts, ...) over its own connection."""
    return part(open_sql_store(settings))


def shared_part(store: Any, part: type[P]) -> P | None:
    """Another part of the SQL store over ``store``'s own connections; None when ``store``
    talks to a team server, which does not serve that part (yet)."""
    sql = getattr(store, "sql", None)
    return None if sql is None else part(sql)


def open_tracking_store(settings: Settings) -> TrackingStore:
    if is_server_url(settings.store_url):
        from ferryml.store.http import HttpTrackingStore

        return HttpTrackingStore(_client(settings))
    return open_sql_store(settings)


def open_registry_store(settings: Settings) -> Any:
    if is_server_url(settings.store_url):
        from ferryml.store.http import HttpRegistryStore

        return HttpRegistryStore(_client(settings))
    from ferryml.store.sql_registry import SqlRegistryStore

    return open_sql_part(settings, SqlRegistryStore)


def open_deployment_store(settings: Settings) -> Any:
    if is_server_url(settings.store_url):
        from ferryml.store.http import HttpDeploymentStore

        return HttpDeploymentStore(_client(settings))
    from ferryml.store.sql_deployments import SqlDeploymentStore

    return open_sql_part(settings, SqlDeploymentStore)


def open_user_store(settings: Settings) -> Any:
    if is_server_url(settings.store_url):
        from ferryml.store.http import HttpUserStore

        return HttpUserStore(_client(settings))
    from ferryml.store.sql_users import SqlUserStore

    return open_sql_part(settings, SqlUserStore)


def open_dataset_store(settings: Settings) -> DatasetStore:
    if is_server_url(settings.store_url):
        from ferryml.store.http_data import HttpDatasetStore

        return HttpDatasetStore(_client(settings))
    from ferryml.store.sql_data import SqlDatasetStore

    return open_sql_part(settings, SqlDatasetStore)


def open_artifact_store(settings: Settings, url: str | None = None) -> Any:
    """The artifact store at ``url`` (default: the settings' own), opened."""
    target = url or settings.artifacts_url
    if is_server_url(target):
        from ferryml.store.http_artifacts import HttpArtifactStore

        return HttpArtifactStore(_client(settings, target))
    from ferryml.store.artifacts import ArtifactStore

    return ArtifactStore(target).open()
