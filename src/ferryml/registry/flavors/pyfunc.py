"""Any other model: an object with a callable ``predict``, or a plain function
``f(DataFrame) -> predictions``, saved with cloudpickle to ``model.pkl``.

cloudpickle stores functions and classes defined in ``__main__`` (a notebook, a script) by
value, so they load without that code; those from an importable module it stores by
reference, and that module must be importable where the model is loaded. Either way,
loading needs the same Python minor version and the same cloudpickle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferryml.registry.flavors import pin
from ferryml.registry.flavors.base import Predictor

__all__ = ["PyfuncFlavor"]

FILE = "model.pkl"


class _FunctionPredictor:
    """A function as a Predictor: ``predict(data)`` is ``function(data)``."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function

    def predict(self, data: Any) -> Any:
        return self.function(data)


class PyfuncFlavor:
    """An object with a ``predict`` method, or a function (any callable but a class)."""

    name = "pyfunc"
    extra: str | None = None

    def matches(self, model: Any) -> bool:
        if isinstance(model, type):
            return False
        return callable(getattr(model, "predict", None)) or callable(model)

    def save(self, model: Any, folder: Path) -> None:
        import cloudpickle

        with (folder / FILE).open("wb") as f:
            cloudpickle.dump(model, f, protocol=5)

    def load(self, folder: Path) -> Predictor:
        import cloudpickle

        with (folder / FILE).open("rb") as f:
            model = cloudpickle.load(f)
        if callable(getattr(model, "predict", None)):
            loaded: Predictor = model
            return loaded
        return _FunctionPredictor(model)

    def requirements(self) -> list[str]:
        return [pin("cloudpickle")]
