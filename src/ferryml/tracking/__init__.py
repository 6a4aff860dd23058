"""Experiment tracking: runs, their params, metrics, tags, artifacts and inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_EXPORTS = {
    "FerryClient": "ferryml.tracking.client",
    "Param": "ferryml.tracking.client",
    "RunTag": "ferryml.tracking.client",
    "SearchPage": "ferryml.tracking.client",
    "ActiveRun": "ferryml.tracking.fluent",
    "Comparison": "ferryml.tracking.compare",
    "compare_runs": "ferryml.tracking.compare",
    "TorchAutolog": "ferryml.tracking._autolog_torch",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.tracking._autolog_torch import TorchAutolog
    from ferryml.tracking.client import FerryClient, Param, RunTag, SearchPage
    from ferryml.tracking.compare import Comparison, compare_runs
    from ferryml.tracking.fluent import ActiveRun
