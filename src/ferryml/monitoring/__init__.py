"""Monitoring: data and prediction drift between a reference and current data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_DRIFT = "ferryml.monitoring.drift"
_EXPORTS = {
    "ColumnDrift": _DRIFT,
    "DriftReport": _DRIFT,
    "detect_drift": _DRIFT,
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.monitoring.drift import ColumnDrift, DriftReport, detect_drift
