"""Models that MLflow's client logged, in MLflow's format: a folder with an ``MLmodel``
file naming its flavors. The ``sklearn`` flavor (pickle, cloudpickle or skops) and the
``python_function`` flavor of a scikit-learn model load without MLflow; any other
``python_function`` model is loaded by MLflow itself, when it is installed.

Called only after every file's digest was checked against the registry.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import yaml

from ferryml.errors import InvalidArgument, MissingExtra
from ferryml.registry.flavors.base import Predictor

__all__ = ["MlflowFlavor"]


class MlflowFlavor:
    """Loads MLflow's model folders; ferryml never saves in this format."""

    name = "mlflow"
    extra: str | None = None

    def matches(self, model: Any) -> bool:
        return False

    def save(self, model: Any, folder: Path) -> None:
        raise InvalidArgument("ferryml saves models in its own flavors, not MLflow's format.")

    def load(self, folder: Path) -> Predictor:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        flavors = mlmodel.get("flavors") or {}
        sklearn = flavors.get("sklearn")
        if sklearn and sklearn.get("pickled_model"):
            return _load_sklearn(folder / sklearn["pickled_model"], sklearn)
        pyfunc = flavors.get("python_function") or {}
        if pyfunc.get("loader_module") == "mlflow.sklearn" and pyfunc.get("model_path"):
            return _load_sklearn(folder / pyfunc["model_path"], {})
        if pyfunc:
            return _load_with_mlflow(folder)
        raise InvalidArgument(
            f"The MLflow model has the flavors {', '.join(flavors) or 'none'}; ferryml loads "
            "sklearn and python_function models."
        )

    def requirements(self) -> list[str]:
        return []


def _load_sklearn(path: Path, flavor: dict[str, Any]) -> Predictor:
    fmt = flavor.get("serialization_format") or (
        "skops" if path.suffix == ".skops" else "cloudpickle"
    )
    if fmt == "skops":
        try:
            import skops.io as sio
        except ImportError as e:
            raise MissingExtra(
                "This MLflow model was saved with skops (MLflow's default); loading it needs "
                "skops: pip install skops. Or log it with serialization_format='cloudpickle'."
            ) from e
        # The digests were checked: these are the bytes that were registered.
        model: Predictor = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        return model
    if fmt == "cloudpickle":
        import cloudpickle

        with path.open("rb") as f:
            loaded: Predictor = cloudpickle.load(f)
        return loaded
    with path.open("rb") as f:
        plain: Predictor = pickle.load(f)
    return plain


def _load_with_mlflow(folder: Path) -> Predictor:
    try:
        import mlflow.pyfunc
    except ImportError as e:
        raise MissingExtra(
            "This MLflow model is a python_function model of its own code; loading it needs "
            "MLflow: pip install mlflow."
        ) from e
    model: Predictor = mlflow.pyfunc.load_model(str(folder))
    return model
