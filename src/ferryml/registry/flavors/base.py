"""The flavor interface: how one kind of model is saved to files and loaded back as
something with ``predict(DataFrame)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Flavor", "Predictor"]


@runtime_checkable
class Predictor(Protocol):
    """What a loaded model offers: ``predict`` on a DataFrame (already checked against the
    signature), returning an array-like with one prediction per row. Classifiers may also
    offer ``predict_proba``."""

    def predict(self, data: Any) -> Any: ...


class Flavor(Protocol):
    name: str  # stored in the package metadata, e.g. "sklearn"
    extra: str | None  # the pip extra that installs what it needs: ferryml[<extra>]

    def matches(self, model: Any) -> bool:
        """Whether this flavor saves ``model``. Must not import heavy packages that the
        model's own module has not imported already."""
        ...

    def save(self, model: Any, folder: Path) -> None:
        """Write the model's files into ``folder`` (which exists and is empty)."""
        ...

    def load(self, folder: Path) -> Predictor:
        """Read the files written by ``save``. Called only after every file's digest was
        checked against the registry."""
        ...

    def requirements(self) -> list[str]:
        """The packages (``name==version``) loading needs, e.g. ``["scikit-learn==1.9.1"]``."""
        ...
