"""Pipelines that the schedule tests run, imported by name as ``scheduled_example:…``."""

from __future__ import annotations

from ferryml.pipelines import pipeline, step


@step
def double(x: int) -> int:
    return 2 * x


@step(cache=False)
def explode(x: int) -> int:
    raise RuntimeError(f"boom at {x}")


@pipeline
def tiny(x: int = 1) -> object:
    return double(x)


@pipeline
def broken(x: int = 1) -> object:
    return explode(x)
