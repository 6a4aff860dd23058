"""XGBoost models, sklearn API (``XGBClassifier``, …) or ``Booster``, in XGBoost's own JSON
format (``model.json``), which later XGBoost versions can still read, and no pickle.

``flavor.json`` records which class to rebuild: loading creates that class and calls its
``load_model``, which restores what the sklearn wrapper needs (classes, feature names).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ferryml.errors import IntegrityError
from ferryml.registry.flavors import pin, require
from ferryml.registry.flavors.base import Predictor

__all__ = ["XGBoostFlavor"]

MODEL, META = "model.json", "flavor.json"
# the classes load may build: a name read from a file is looked up only among these
KINDS = (
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
    "XGBModel",
)
BOOSTER = "Booster"


class _BoosterPredictor:
    """A raw Booster: ``predict`` returns what ``Booster.predict`` does for the objective
    (probabilities for ``binary:logistic``)."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: Any) -> Any:
        xgb = require("xgboost", "xgboost")
        return self.booster.predict(xgb.DMatrix(data))


class XGBoostFlavor:
    """An XGBoost sklearn-API model (``XGBModel``) or a ``Booster``."""

    name = "xgboost"
    extra: str | None = "xgboost"

    def matches(self, model: Any) -> bool:
        xgb = sys.modules.get("xgboost")
        return xgb is not None and isinstance(model, (xgb.XGBModel, xgb.Booster))

    def save(self, model: Any, folder: Path) -> None:
        xgb = require("xgboost", "xgboost")
        if isinstance(model, xgb.Booster):
            kind = BOOSTER
        else:
            # a subclass of the user's is rebuilt as the XGBoost class it extends
            kind = next(c.__name__ for c in type(model).__mro__ if c.__name__ in KINDS)
        model.save_model(folder / MODEL)
        (folder / META).write_text(json.dumps({"kind": kind}))

    def load(self, folder: Path) -> Predictor:
        xgb = require("xgboost", "xgboost")
        kind = json.loads((folder / META).read_text())["kind"]
        if kind == BOOSTER:
            return _BoosterPredictor(xgb.Booster(model_file=folder / MODEL))
        if kind not in KINDS:
            raise IntegrityError(f"Unknown XGBoost model class {kind!r} in {META}.")
        model = getattr(xgb, kind)()
        model.load_model(folder / MODEL)
        loaded: Predictor = model
        return loaded

    def requirements(self) -> list[str]:
        return [pin("xgboost-cpu", "xgboost")]
