"""Model flavors: how each kind of model is saved to files and loaded back as a Predictor.

``flavor_for(model)`` picks the flavor for a model, ``get_flavor(name)`` the one a stored
package names. Each flavor lives in its own module and imports its library (XGBoost,
PyTorch, …) only when it saves or loads, so importing this package stays light.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType
from typing import Any

from ferryml.errors import InvalidArgument
from ferryml.registry.flavors.base import Flavor, Predictor

__all__ = ["FLAVORS", "Flavor", "Predictor", "flavor_for", "get_flavor", "pin", "require"]

# Most specific first: XGBoost's and LightGBM's sklearn-API models are scikit-learn
# estimators too, and almost anything with a predict method is a pyfunc.
FLAVORS = ("xgboost", "lightgbm", "pytorch", "onnx", "sklearn", "pyfunc")
_CLASSES = {
    "xgboost": "XGBoostFlavor",
    "lightgbm": "LightGBMFlavor",
    "pytorch": "PyTorchFlavor",
    "onnx": "ONNXFlavor",
    "sklearn": "SklearnFlavor",
    "pyfunc": "PyfuncFlavor",
    "mlflow": "MlflowFlavor",  # loads MLflow's format; never picked for saving
}
_LIBRARIES = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "onnx": "ONNX", "pytorch": "PyTorch"}


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name`` (as stored in a model package).

    Raises:
        InvalidArgument: no flavor has that name.
    """
    if name not in _CLASSES:
        raise InvalidArgument(f"Unknown model flavor {name!r}. Use one of: {', '.join(FLAVORS)}.")
    module = importlib.import_module(f"{__name__}.{name}")
    flavor: Flavor = getattr(module, _CLASSES[name])()
    return flavor


def flavor_for(model: Any) -> Flavor:
    """The first flavor, most specific first, that saves ``model``.

    Raises:
        InvalidArgument: no flavor understands the model's type.
    """
    for name in FLAVORS:
        flavor = get_flavor(name)
        if flavor.matches(model):
            return flavor
    kind = type(model)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    raise InvalidArgument(
        f"No flavor saves a model of type {module}{kind.__qualname__}: ferryml saves "
        "scikit-learn, XGBoost, LightGBM, PyTorch and ONNX models, and any object with a "
        "predict method."
    )


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, which the pip extra ``ferryml[extra]`` installs.

    Raises:
        InvalidArgument: the module is not installed; the message says what to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        library = _LIBRARIES.get(extra, module)
        raise InvalidArgument(
            f"Loading this model needs {library}: pip install 'ferryml[{extra}]'."
        ) from e


def pin(*distributions: str) -> str:
    """``name==version`` of the first of ``distributions`` that is installed (alternatives
    such as ``xgboost-cpu`` and ``xgboost`` provide the same module)."""
    for name in distributions:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        # a local label (torch's "+cpu") names a build, not a release an index serves;
        # "==2.13.0" accepts any local build of it
        return f"{name}=={version.split('+')[0]}"
    raise InvalidArgument(
        f"None of {', '.join(distributions)} is installed; install one to save this model."
    )
