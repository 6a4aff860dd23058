"""scikit-learn estimators and Pipelines, pickled (protocol 5) into ``model.pkl``.

Pickle is what scikit-learn itself documents for persistence; it is safe here because a
package's files are checked against their registered digests before ``load`` runs. Loading
needs the same scikit-learn version, and any custom transformer's class importable.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

from ferryml.registry.flavors import pin
from ferryml.registry.flavors.base import Predictor

__all__ = ["SklearnFlavor"]

FILE = "model.pkl"


class SklearnFlavor:
    """A fitted scikit-learn estimator (or Pipeline) that predicts."""

    name = "sklearn"
    extra: str | None = None  # scikit-learn is a core dependency

    def matches(self, model: Any) -> bool:
        base = sys.modules.get("sklearn.base")
        return (
            base is not None
            and isinstance(model, base.BaseEstimator)
            and callable(getattr(model, "predict", None))
        )

    def save(self, model: Any, folder: Path) -> None:
        with (folder / FILE).open("wb") as f:
            pickle.dump(model, f, protocol=5)

    def load(self, folder: Path) -> Predictor:
        with (folder / FILE).open("rb") as f:
            model: Predictor = pickle.load(f)
        return model

    def requirements(self) -> list[str]:
        return [pin("scikit-learn")]
