"""A deployment whose model fails on purpose, for the tests of failed requests (here and
in the browser tests): ``scoring``, two versions of one function model, the second a 50%
canary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

import ferryml as ferry
from ferryml.config import Settings
from ferryml.serving.deployments import Deployments

FAILING = """
def score(frame):
    if (frame["a"] <= -100).any():  # as a model that reads a store gone away fails
        from ferryml.errors import StoreUnavailable

        raise StoreUnavailable("The feature store is unreachable.")
    if (frame["a"] < 0).any():
        raise ValueError("score cannot take a negative a")
    return (frame["a"] * 2).tolist()
"""


def script_function(source: str, name: str) -> Callable[[pd.DataFrame], list[float]]:
    """Function ``name`` of ``source``, defined as in a script so that cloudpickle keeps
    it by value and any process can load it."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(source, namespace)  # noqa: S102 - the tests' own source
    function: Callable[[pd.DataFrame], list[float]] = namespace[name]
    return function


def failing_model() -> Callable[[pd.DataFrame], list[float]]:
    """A function model that refuses a negative ``a`` (the server answers 422) and fails
    as if its store were down from -100 on (503)."""
    return script_function(FAILING, "score")


def register_failing_deployment(settings: Settings, name: str) -> None:
    """Model ``name`` with two versions of the failing function, deployed as ``name``
    with version 2 as a 50% canary."""
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    example = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 0.1]})
    for _ in range(2):
        with ferry.start_run():
            ferry.log_model(failing_model(), input_example=example, registered_model_name=name)
    manager = Deployments(settings)
    try:
        manager.create(name, name, 1, canary=2, canary_weight=50.0)
    finally:
        manager.close()
