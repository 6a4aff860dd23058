"""Monitors: a deployment's predictions checked window by window against a reference.

A monitor names a deployment, a reference and a window. ``run_monitor`` reads the
predictions logged since the last window it stored, a day at a time, splits them into
complete windows and, for each one, tests the features (and the predictions, when the
reference has them) for drift from the reference, computes the realised performance where
labels arrived, stores the result and evaluates the monitor's alert rules on the window's metrics:

- ``rows``, ``drift_share``, ``n_drifted``, ``dataset_drift`` (1 or 0) and, when the
  predictions were tested, ``prediction_drift`` (1 or 0);
- with a ``task`` and labels: ``labelled`` and the task's metrics (``accuracy``, ``f1``,
  ... or ``mae``, ``rmse``).

Beyond ``drift`` and ``performance`` (the default checks), a monitor can run:

- ``concept``: a change detector (ADWIN) over the labelled errors of the previous window
  then this one; ``concept_drift`` is 1 when it fires in this window, and the window keeps
  where the change began;
- ``estimated`` (binary classifiers): ``estimated_accuracy``, ``estimated_roc_auc``, ...
  from the model's own probabilities (CBPE), before any label arrives;
- ``importance``: permutation importance of each feature on the window's labelled rows.

References:

- ``model:NAME@ALIAS`` (or ``model:NAME/VERSION``): the training-data profile logged with
  the model version (``ferry.log_model(..., training_data=X)``);
- ``data:NAME@VERSION``: the profile of a table version of the data workspace;
- ``window:START/END``: the deployment's own predictions logged in ``START <= time < END``
  (ISO times, UTC when no zone is given).

A window is complete once its end has passed (time windows, ``"1h"``, ``"15m"``, ``"1d"``)
or once it holds ``count`` rows. Running a monitor twice stores and alerts on each window
once.

Example:
    >>> add_monitor(settings, MonitorSpec("churn-drift", "churn", "model:churn@champion",
    ...     window="1h", task="classification", rules=["drift_share > 0.3 for 2 windows"]))
    >>> for result in run_monitor(settings, "churn-drift"):
    ...     print(result.start, result.metrics["drift_share"])
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from ferryml.config import Settings
from ferryml.data.profile import Profile
from ferryml.errors import FerryError, InvalidArgument, NotFound
from ferryml.monitoring import _checks
from ferryml.monitoring._spec import MonitorSpec, _reference_parts, _utc, _window_args
from ferryml.monitoring._window_reader import load_window as _load
from ferryml.monitoring._window_reader import read_windows
from ferryml.monitoring.alerts import Alert, AlertManager
from ferryml.monitoring.channels import parse_channels
from ferryml.monitoring.drift import ColumnDrift, DriftReport, detect_drift
from ferryml.monitoring.performance import METRICS, Window, performance
from ferryml.store.factory import open_monitor_store
from ferryml.store.loop import MonitorStore

__all__ = [
    "latest_metrics",
    "latest_windows",
    "MonitorStatus",
    "MonitorSpec",
    "WindowResult",
    "add_monitor",
    "get_monitor",
    "list_monitors",
    "remove_monitor",
    "report",
    "report_html",
    "run_monitor",
]

_log = logging.getLogger("ferryml.monitoring")
# The prediction log's columns that are not the model's inputs.
NOT_FEATURES = frozenset(
    {"id", "time", "deployment", "route", "model", "version", "latency_ms", "request_id", "label"}
)


@dataclass(frozen=True)
class WindowResult:
    """What a monitor found in one window: its metrics, the drift report and the alerts
    that fired or resolved."""

    monitor: str
    start: pd.Timestamp
    end: pd.Timestamp
    metrics: dict[str, float]
    drift: DriftReport
    alerts: tuple[Alert, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


# -- the API ----------------------------------------------------------------------------


def add_monitor(settings: Settings, spec: MonitorSpec) -> MonitorSpec:
    """Store a new monitor after checking that its reference resolves and its rules and
    channels are well formed.

    Raises:
        AlreadyExists: a monitor of that name exists.
        NotFound: the deployment is unknown (close names are suggested), or the
            reference's model, alias or data version does not exist.
        InvalidArgument: the reference has no profile, or a rule or channel is malformed.
    """
    from ferryml.serving.deployments import Deployments

    _alerts(settings, spec)  # validates rules and channels; does no I/O
    deployments = Deployments(settings)
    try:  # a typo would watch nothing and report "no new complete window" forever
        deployments.require(spec.deployment)
    finally:
        deployments.close()
    _load_reference(settings, spec)
    with _store(settings) as store:
        store.create(spec.name, spec.to_dict())
    return spec


def get_monitor(settings: Settings, name: str) -> MonitorSpec:
    """The monitor's spec. Raises NotFound."""
    with _store(settings) as store:
        return MonitorSpec.from_dict(store.get(name))


def remove_monitor(settings: Settings, name: str) -> int:
    """Delete a monitor and its stored windows (to change its checks, remove it and add it
    again); the number of windows deleted. Raises NotFound."""
    with _store(settings) as store:
        return store.remove(name)


def list_monitors(settings: Settings) -> list[MonitorSpec]:
    """Every monitor, by name."""
    with _store(settings) as store:
        return [MonitorSpec.from_dict(spec) for _, spec in store.list_monitors()]


@dataclass(frozen=True)
class MonitorStatus:
    """A monitor's newest stored window, as the server exports it: when the window ended
    (seconds since the epoch), how long a window is (None for windows of a count of rows),
    and its numeric metrics."""

    window_end: float
    window_seconds: float | None
    metrics: dict[str, float]


def latest_windows(settings: Settings, deployment: str) -> dict[str, MonitorStatus]:
    """The newest stored window of every monitor watching ``deployment``, by monitor name;
    monitors with no window yet are left out."""
    found: dict[str, MonitorStatus] = {}
    with _store(settings) as store:
        for name, spec in store.list_monitors():
            if spec.get("deployment") != deployment:
                continue
            last = store.last_window(name)  # read the newest window only
            results = [] if last is None else store.list_results(name, ended_after=last[1] - 1)
            if not results or last is None:
                continue
            try:
                duration, _ = _window_args(spec.get("window", "1h"))
            except InvalidArgument:
                duration = None
            found[name] = MonitorStatus(
                last[1] / 1000,
                None if duration is None else float(duration.removesuffix("s")),
                {
                    k: float(v)
                    for k, v in results[-1].metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                },
            )
    return found


def latest_metrics(settings: Settings, deployment: str) -> dict[str, dict[str, float]]:
    """The newest stored window's numeric metrics of every monitor watching ``deployment``,
    by monitor name."""
    return {name: status.metrics for name, status in latest_windows(settings, deployment).items()}


def run_monitor(
    settings: Settings,
    name: str,
    *,
    now: dt.datetime | pd.Timestamp | None = None,
    recheck: dt.datetime | pd.Timestamp | None = None,
) -> list[WindowResult]:
    """Check the complete windows logged since the monitor's last stored window.

    Args:
        settings: where the stores are.
        name: the monitor.
        now: windows ending after it are left for a later run; default the current time.
        recheck: check the windows ending after it again, with every row logged in them
            by now (rows stamped into checked windows, after the clock stepped back, are
            otherwise never checked). Alert rules count each window once, so a window
            checked again does not alert again.

    Returns:
        The windows checked by this run, oldest first; empty when none is new.

    Raises:
        NotFound: no such monitor, or its reference no longer resolves.
        InvalidArgument: the predictions cannot be compared with the reference.
    """
    now_ts = _utc(pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now))
    with _store(settings) as store:
        spec = MonitorSpec.from_dict(store.get(name))
        if recheck is not None:
            store.remove_results(name, ended_after=_ms(_utc(pd.Timestamp(recheck))))
        last = store.last_window(name)
        by, count = _window_args(spec.window)
        since = None
        if last is not None:  # a count window includes its last row: start past it
            since = pd.Timestamp(last[1] + (1 if count else 0), unit="ms", tz="UTC")
            if spec.rules:
                _count_last(settings, spec, store, last)
        complete = (
            w
            for w in read_windows(settings, spec.deployment, since, now_ts, by=by, count=count)
            if len(w.frame) and (len(w.frame) == count if count else w.end <= now_ts)
        )
        try:
            first = next(complete, None)
        except NotFound:
            return []  # the deployment has logged nothing yet
        if first is None:
            return []
        reference = _load_reference(settings, spec) if "drift" in spec.checks else None
        previous = None
        if "concept" in spec.checks and last is not None:
            previous = _previous(settings, spec, last, count)
        results = []
        manager = _alerts(settings, spec) if spec.rules else None
        models = _checks.ModelCache(settings)
        try:
            for window in itertools.chain([first], complete):
                start, end = _ms(window.start), _ms(window.end)
                drift, metrics, details = _check(spec, reference, window, previous, models)
                previous = window.frame
                if not store.add_result(name, start, end, metrics, {**drift.to_dict(), **details}):
                    continue  # stored by an earlier run
                fired = manager.evaluate(name, start, end, metrics) if manager else []
                results.append(
                    WindowResult(
                        name, window.start, window.end, metrics, drift, tuple(fired), details
                    )
                )
        finally:
            models.close()
            if manager is not None:
                manager.close()
        return results


def report(settings: Settings, name: str) -> dict[str, Any]:
    """The monitor's spec and every stored window, oldest first, as JSON-able data.

    Raises:
        NotFound: no such monitor.
    """
    with _store(settings) as store:
        spec = store.get(name)
        results = store.list_results(name)
    return {
        "monitor": name,
        "spec": spec,
        "windows": [
            {
                "start": _iso(r.window_start),
                "end": _iso(r.window_end),
                "metrics": r.metrics,
                "dataset_drift": r.drift.get("dataset_drift"),
                "drifted_columns": r.drift.get("drifted_columns", []),
                **{k: r.drift[k] for k in ("concept", "importance") if k in r.drift},
            }
            for r in results
        ],
    }


def report_html(settings: Settings, name: str) -> str:
    """One self-contained HTML page: drift share and performance over time (a table and
    small inline SVG charts), then the latest window's drift report.

    Raises:
        NotFound: no such monitor.
    """
    with _store(settings) as store:
        spec = store.get(name)
        results = store.list_results(name)
    from ferryml.monitoring._monitor_html import render_monitor

    latest = _drift_from_dict(results[-1].drift) if results else None
    return render_monitor(name, spec, results, latest)


# -- helpers ----------------------------------------------------------------------------


@contextmanager
def _store(settings: Settings) -> Iterator[MonitorStore]:
    store = open_monitor_store(settings)
    try:
        yield store
    finally:
        store.close()


def _alerts(settings: Settings, spec: MonitorSpec) -> AlertManager:
    channels = parse_channels(list(spec.channels)) if spec.channels else None
    return AlertManager(settings, list(spec.rules), channels)


def _count_last(
    settings: Settings, spec: MonitorSpec, store: MonitorStore, last: tuple[int, int]
) -> None:
    """Count the last stored window against the alert rules again: a pass killed between
    storing a window and counting it would otherwise never alert on it. Counting a window
    twice changes nothing, so a window counted already stays as it was."""
    manager = _alerts(settings, spec)
    try:
        for r in store.list_results(spec.name, ended_after=last[1] - 1):
            manager.evaluate(spec.name, r.window_start, r.window_end, r.metrics)
    finally:
        manager.close()


def _load_reference(settings: Settings, spec: MonitorSpec) -> Profile | pd.DataFrame:
    kind, rest = _reference_parts(spec.reference)
    if kind == "model":
        from ferryml.registry.models import Registry

        registry = Registry(settings)
        try:
            version = registry.version(rest)
            if not version.profile_digest:
                raise InvalidArgument(
                    f"Model version {version.name}/{version.version} has no training-data "
                    "profile; log it with ferry.log_model(..., training_data=X), or use a "
                    "data: or window: reference."
                )
            blob = registry.artifacts.get_bytes(version.profile_digest)
        finally:
            registry.close()
        return Profile.from_dict(json.loads(blob))
    if kind == "data":
        from ferryml.data.workspace import Workspace

        workspace = Workspace(settings)
        try:
            return workspace.profile(rest)
        finally:
            workspace.close()
    start, _, end = rest.partition("/")
    frame = _load(settings, spec.deployment, _utc(pd.Timestamp(start)), _utc(pd.Timestamp(end)))
    if frame.empty:
        raise NotFound(
            f"Deployment {spec.deployment!r} logged no predictions in {rest}; pick a window "
            "with predictions as the reference."
        )
    return frame.drop(columns=[c for c in frame.columns if c in NOT_FEATURES])


def _drift(reference: Profile | pd.DataFrame, current: pd.DataFrame) -> DriftReport:
    names = list(reference.columns)
    features = [c for c in names if c in current.columns and c not in NOT_FEATURES]
    features = [c for c in features if c != "prediction"]
    scalar = (
        "prediction" in current.columns
        and not current["prediction"].map(lambda v: isinstance(v, list | tuple | dict)).any()
    )
    prediction = "prediction" if "prediction" in names and scalar else None
    if not features and prediction is None:
        raise InvalidArgument(
            f"The predictions share no column with the reference (it has "
            f"{', '.join(map(repr, names)) or 'none'}); pick a reference of this model's inputs."
        )
    return detect_drift(reference, current, columns=features, prediction=prediction)


def _check(
    spec: MonitorSpec,
    reference: Profile | pd.DataFrame | None,
    window: Window,
    previous: pd.DataFrame | None,
    models: _checks.ModelCache,
) -> tuple[DriftReport, dict[str, float], dict[str, Any]]:
    """Run the monitor's checks on one window: its drift report, metrics and details."""
    frame = window.frame
    metrics = {"rows": float(len(frame))}
    details: dict[str, Any] = {}
    drift = _drift_from_dict({})
    if reference is not None:
        drift = _drift(reference, frame)
        metrics |= {
            "drift_share": drift.drift_share,
            "n_drifted": float(len(drift.drifted_columns)),
            "dataset_drift": float(drift.dataset_drift),
        }
        if drift.prediction_drift is not None:
            metrics["prediction_drift"] = float(drift.prediction_drift)
    task = spec.task
    if task is None:
        return drift, metrics, details
    features = [c for c in frame.columns if c not in NOT_FEATURES and c != "prediction"]
    probability = None
    if "estimated" in spec.checks and (
        got := _guarded(details, "estimated", _checks.estimated, frame, features, models)
    ):
        metrics |= got[0]
        frame, probability = frame.assign(_probability=got[1]), "_probability"
    labelled = "label" in frame.columns and frame["label"].notna().any()
    if "performance" in spec.checks and labelled:
        perf = performance(
            frame,
            task=task,  # type: ignore[arg-type]
            probability_column=probability,
            by=None,
            group_by=(),
        )
        row = perf.iloc[0]
        metrics["labelled"] = float(row["labelled"])
        for metric in METRICS[task]:  # type: ignore[index]
            value = float(row[metric])
            if math.isfinite(value):
                metrics[metric] = value
    if "concept" in spec.checks and (
        got := _guarded(details, "concept", _checks.concept, frame, previous, task)
    ):
        metrics |= got[0]
        if got[1] is not None:
            details["concept"] = got[1]
    if "importance" in spec.checks:
        detail = _guarded(details, "importance", _checks.importance, frame, features, task, models)
        if detail is not None:
            details["importance"] = detail
    return drift, metrics, details


def _guarded(details: dict[str, Any], check: str, run: Any, *args: Any) -> Any:
    """A model-aware check's result; when it fails, None and the reason kept in the
    window's details, so the other checks and the alerts carry on."""
    try:
        return run(*args)
    except Exception as e:  # noqa: BLE001 - the model's own failure, whatever its type
        reason = str(e) if isinstance(e, FerryError) else f"{type(e).__name__}: {e}"
        details[check] = {"error": reason}
        _log.warning("check %r failed: %s", check, reason)
        return None


def _previous(
    settings: Settings, spec: MonitorSpec, last: tuple[int, int], count: int | None
) -> pd.DataFrame | None:
    """The rows of the monitor's last stored window, for the concept check's history."""
    start = pd.Timestamp(last[0], unit="ms", tz="UTC")
    end = pd.Timestamp(last[1] + (1 if count else 0), unit="ms", tz="UTC")
    try:
        return _load(settings, spec.deployment, start, end)
    except NotFound:
        return None


def _drift_from_dict(data: Mapping[str, Any]) -> DriftReport:
    """Rebuild a stored ``DriftReport.to_dict()`` for rendering."""
    names = {f.name for f in fields(ColumnDrift)}

    def column(d: Mapping[str, Any]) -> ColumnDrift:
        values: dict[str, Any] = {}
        for key, value in d.items():
            if key not in names:
                continue
            if isinstance(value, list):
                value = tuple(
                    _float(v) if key not in ("new_categories", "categories") else v for v in value
                )
            elif key in ("statistic", "reference_missing_rate", "current_missing_rate"):
                value = _float(value)
            values[key] = value
        return ColumnDrift(**values)

    return DriftReport(
        columns={n: column(c) for n, c in data.get("columns", {}).items()},
        prediction={n: column(c) for n, c in data.get("prediction", {}).items()},
        share_threshold=float(data.get("share_threshold", 0.5)),
        reference_rows=int(data.get("reference_rows", 0)),
        current_rows=int(data.get("current_rows", 0)),
    )


def _float(value: Any) -> Any:
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    return value


def _ms(ts: pd.Timestamp) -> int:
    return math.floor(_utc(ts).value / 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
