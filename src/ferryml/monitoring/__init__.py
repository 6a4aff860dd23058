"""Monitoring: data and prediction drift, performance with feedback labels, concept drift,
estimated performance before labels arrive, and alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_DRIFT = "ferryml.monitoring.drift"
_MONITORS = "ferryml.monitoring.monitors"
_EXPORTS = {
    "ColumnDrift": _DRIFT,
    "DriftReport": _DRIFT,
    "detect_drift": _DRIFT,
    "detect_dataset_drift": "ferryml.monitoring.dataset_drift",
    "Window": "ferryml.monitoring.performance",
    "windows": "ferryml.monitoring.performance",
    "realised_performance": "ferryml.monitoring.performance",
    "ChangeReport": "ferryml.monitoring.concept",
    "detect_change": "ferryml.monitoring.concept",
    "prediction_errors": "ferryml.monitoring.concept",
    "Calibrator": "ferryml.monitoring.estimated",
    "estimate_performance": "ferryml.monitoring.estimated",
    "fit_calibration": "ferryml.monitoring.estimated",
    "AlertManager": "ferryml.monitoring.alerts",
    "Rule": "ferryml.monitoring.rules",
    "parse_rule": "ferryml.monitoring.rules",
    "MonitorSpec": _MONITORS,
    "WindowResult": _MONITORS,
    "add_monitor": _MONITORS,
    "get_monitor": _MONITORS,
    "list_monitors": _MONITORS,
    "remove_monitor": _MONITORS,
    "run_monitor": _MONITORS,
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.monitoring.alerts import AlertManager
    from ferryml.monitoring.concept import ChangeReport, detect_change, prediction_errors
    from ferryml.monitoring.dataset_drift import detect_dataset_drift
    from ferryml.monitoring.drift import ColumnDrift, DriftReport, detect_drift
    from ferryml.monitoring.estimated import Calibrator, estimate_performance, fit_calibration
    from ferryml.monitoring.monitors import (
        MonitorSpec,
        WindowResult,
        add_monitor,
        get_monitor,
        list_monitors,
        remove_monitor,
        run_monitor,
    )
    from ferryml.monitoring.performance import Window, windows
    from ferryml.monitoring.performance import performance as realised_performance
    from ferryml.monitoring.rules import Rule, parse_rule
