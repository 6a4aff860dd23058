"""The one place that builds stores from settings: the SQL stores for ``sqlite:`` and
``postgresql:`` URLs, the HTTP stores for a team server's ``http(s):`` URL. The core asks
here and cannot tell the two apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ferryml.errors import InvalidArgument

if TYPE_CHECKING:
    from ferryml.config import Settings
    from ferryml.store.base import DatasetStore, ScheduleStore, StepCache, TrackingStore
    from ferryml.store.loop import AlertStore, AutomationStore, MonitorStore, PredictionStore
    from ferryml.store.request_errors import RequestErrorStore
    from ferryml.store.review import ReviewStore
    from ferryml.store.sql import SqlStore, StorePart

__all__ = [
    "is_server_url",
    "open_alert_store",
    "open_artifact_store",
    "open_automation_store",
    "open_dataset_store",
    "open_deployment_store",
    "open_monitor_store",
    "open_prediction_store",
    "open_registry_store",
    "open_request_error_store",
    "open_review_store",
    "open_schedule_store",
    "open_sql_part",
    "open_sql_store",
    "open_step_cache",
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


def _loop_part(settings: Settings, sql: str, http: str, sharing: Any) -> Any:
    """The part named ``sql`` (a class of ``ferryml.store.sql_*``) or ``http`` (of
    ``ferryml.store.http_loop``); over ``sharing``'s connections when given (closing the
    part then closes ``sharing``'s too)."""
    import importlib

    client = getattr(sharing, "client", None)
    if client is not None or (sharing is None and is_server_url(settings.store_url)):
        from ferryml.store import http_loop

        return getattr(http_loop, http)(client or _client(settings))
    module, name = sql.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"ferryml.store.{module}"), name)
    sql_store = getattr(sharing, "sql", None)
    return cls(sql_store) if sql_store is not None else open_sql_part(settings, cls)


def open_monitor_store(settings: Settings, *, sharing: Any = None) -> MonitorStore:
    """Monitors and their windows: SQL, or a team server's by the store's URL."""
    store: MonitorStore = _loop_part(
        settings, "sql_monitors.SqlMonitorStore", "HttpMonitorStore", sharing
    )
    return store


def open_alert_store(settings: Settings, *, sharing: Any = None) -> AlertStore:
    """Alerts, their deliveries and the rules' states."""
    store: AlertStore = _loop_part(settings, "sql_alerts.SqlAlertStore", "HttpAlertStore", sharing)
    return store


def open_prediction_store(settings: Settings, *, sharing: Any = None) -> PredictionStore:
    """The prediction log's index, and feedback labels."""
    store: PredictionStore = _loop_part(
        settings, "sql_predictions.SqlPredictionStore", "HttpPredictionStore", sharing
    )
    return store


def open_automation_store(settings: Settings, *, sharing: Any = None) -> AutomationStore:
    """Policies' state, the agents' lease, and decisions."""
    store: AutomationStore = _loop_part(
        settings, "sql_automation.SqlAutomationStore", "HttpAutomationStore", sharing
    )
    return store


def open_review_store(settings: Settings, *, sharing: Any = None) -> ReviewStore:
    """Review queues and the predictions chosen for a person to label."""
    store: ReviewStore = _loop_part(
        settings, "sql_review.SqlReviewStore", "HttpReviewStore", sharing
    )
    return store


def open_request_error_store(settings: Settings, *, sharing: Any = None) -> RequestErrorStore:
    """Failed prediction requests, counted beside the prediction log."""
    store: RequestErrorStore = _loop_part(
        settings, "sql_request_errors.SqlRequestErrorStore", "HttpRequestErrorStore", sharing
    )
    return store


def open_step_cache(settings: Settings) -> StepCache:
    if is_server_url(settings.store_url):
        from ferryml.store.http_data import HttpStepCache

        return HttpStepCache(_client(settings))
    from ferryml.store.sql_pipelines import SqlStepCache

    return open_sql_part(settings, SqlStepCache)


def open_schedule_store(settings: Settings) -> ScheduleStore:
    if is_server_url(settings.store_url):
        from ferryml.store.http_data import HttpScheduleStore

        return HttpScheduleStore(_client(settings))
    from ferryml.store.sql_schedules import SqlScheduleStore

    return open_sql_part(settings, SqlScheduleStore)


def open_artifact_store(settings: Settings, url: str | None = None) -> Any:
    """The artifact store at ``url`` (default: the settings' own), opened."""
    target = url or settings.artifacts_url
    if is_server_url(target):
        from ferryml.store.http_artifacts import HttpArtifactStore

        return HttpArtifactStore(_client(settings, target))
    from ferryml.store.artifacts import ArtifactStore

    return ArtifactStore(target).open()
