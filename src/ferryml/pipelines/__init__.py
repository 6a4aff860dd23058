"""Pipelines: plain Python steps, cached, run in parallel locally or on Dask, swept and
scheduled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_EXPORTS = {
    "Pipeline": "ferryml.pipelines._dsl",
    "Step": "ferryml.pipelines._dsl",
    "load_target": "ferryml.pipelines._dsl",
    "pipeline": "ferryml.pipelines._dsl",
    "step": "ferryml.pipelines._dsl",
    "PipelineResult": "ferryml.pipelines.engine",
    "StepEvent": "ferryml.pipelines.engine",
    "StepState": "ferryml.pipelines.engine",
    "run_pipeline": "ferryml.pipelines.engine",
    "run_target": "ferryml.pipelines.engine",
    "SweepResult": "ferryml.pipelines.sweep",
    "sweep": "ferryml.pipelines.sweep",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.pipelines._dsl import Pipeline, Step, load_target, pipeline, step
    from ferryml.pipelines.engine import (
        PipelineResult,
        StepEvent,
        StepState,
        run_pipeline,
        run_target,
    )
    from ferryml.pipelines.sweep import SweepResult, sweep
