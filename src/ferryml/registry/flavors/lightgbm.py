"""LightGBM models, sklearn API (``LGBMClassifier``, …) or ``Booster``, in LightGBM's own
text format (``model.txt``), and no pickle.

LightGBM cannot rebuild a sklearn wrapper from that file, so loading gives the Booster
wrapped the way the wrapper uses it: for a classifier, ``flavor.json`` keeps ``classes_``,
``predict_proba`` turns a binary model's single column into two (as ``LGBMClassifier`` does)
and ``predict`` maps the most probable column back to its class. Checked in the tests to
equal the original model's outputs exactly, on binary and multiclass data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ferryml.errors import InvalidArgument
from ferryml.registry.flavors import pin, require
from ferryml.registry.flavors.base import Predictor

__all__ = ["LightGBMFlavor"]

MODEL, META = "model.txt", "flavor.json"


class _BoosterPredictor:
    """A regressor, ranker or raw Booster: ``predict`` is ``Booster.predict``."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: Any) -> Any:
        return self.booster.predict(data)


class _ClassifierPredictor(_BoosterPredictor):
    def __init__(self, booster: Any, classes: list[Any]) -> None:
        super().__init__(booster)
        self.classes = np.asarray(classes)

    def predict_proba(self, data: Any) -> Any:
        proba = self.booster.predict(data)
        return np.vstack((1.0 - proba, proba)).T if proba.ndim == 1 else proba

    def predict(self, data: Any) -> Any:
        return self.classes[np.argmax(self.predict_proba(data), axis=1)]


class LightGBMFlavor:
    """A LightGBM sklearn-API model (``LGBMModel``) or a ``Booster``."""

    name = "lightgbm"
    extra: str | None = "lightgbm"

    def matches(self, model: Any) -> bool:
        lgb = sys.modules.get("lightgbm")
        return lgb is not None and isinstance(model, (lgb.LGBMModel, lgb.Booster))

    def save(self, model: Any, folder: Path) -> None:
        lgb = require("lightgbm", "lightgbm")
        booster = model if isinstance(model, lgb.Booster) else model.booster_
        # with early stopping, LightGBM saves (and later predicts with) the best iteration
        booster.save_model(folder / MODEL)
        meta: dict[str, Any] = {"classes": None}
        if isinstance(model, lgb.LGBMClassifier):
            if callable(model.objective):
                raise InvalidArgument(
                    "LightGBM gives no probabilities for a classifier trained with a custom "
                    "objective function; save its booster_ instead (predict gives raw scores)."
                )
            meta["classes"] = model.classes_.tolist()
        (folder / META).write_text(json.dumps(meta))

    def load(self, folder: Path) -> Predictor:
        lgb = require("lightgbm", "lightgbm")
        booster = lgb.Booster(model_file=folder / MODEL)
        classes = json.loads((folder / META).read_text())["classes"]
        if classes is None:
            return _BoosterPredictor(booster)
        return _ClassifierPredictor(booster, classes)

    def requirements(self) -> list[str]:
        return [pin("lightgbm")]
