"""Model flavors: each kind of model is saved, loaded back from a fresh folder, and predicts
exactly as before; ``flavor_for`` picks the most specific flavor; errors say what to do."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd
import pytest
import torch
import xgboost as xgb
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferryml.errors import InvalidArgument
from ferryml.registry.flavors import FLAVORS, Predictor, flavor_for, get_flavor, require

X_CANCER, Y_CANCER = load_breast_cancer(return_X_y=True, as_frame=True)
X_DIABETES, Y_DIABETES = load_diabetes(return_X_y=True, as_frame=True)


def round_trip(model: Any, tmp_path: Path, expected_flavor: str) -> Predictor:
    """Save with the flavor ``flavor_for`` picks, then load from a fresh folder holding
    nothing but the saved files, as a registry load does."""
    flavor = flavor_for(model)
    assert flavor.name == expected_flavor
    saved, fresh = tmp_path / "saved", tmp_path / "fresh"
    saved.mkdir(parents=True)
    flavor.save(model, saved)
    shutil.copytree(saved, fresh)
    shutil.rmtree(saved)
    return get_flavor(flavor.name).load(fresh)


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


class Doubler:
    """A custom model: any object with a predict method."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, data: pd.DataFrame) -> Any:
        return data.sum(axis=1).to_numpy() * self.factor


def first_column_positive(data: pd.DataFrame) -> Any:
    return (data.iloc[:, 0] > 0).to_numpy()


def test_sklearn_pipeline_round_trips_predictions_and_probabilities(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_CANCER, Y_CANCER)
    loaded = round_trip(model, tmp_path, "sklearn")
    assert files(tmp_path / "fresh") == {"model.pkl"}
    np.testing.assert_array_equal(loaded.predict(X_CANCER), model.predict(X_CANCER))
    np.testing.assert_array_equal(
        loaded.predict_proba(X_CANCER),  # type: ignore[attr-defined]
        model.predict_proba(X_CANCER),
    )


def test_sklearn_regressor_round_trips_predictions(tmp_path: Path) -> None:
    model = LinearRegression().fit(X_DIABETES, Y_DIABETES)
    loaded = round_trip(model, tmp_path, "sklearn")
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), model.predict(X_DIABETES))


def test_xgboost_classifier_round_trips_through_json_not_pickle(tmp_path: Path) -> None:
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X_CANCER, Y_CANCER)
    loaded = round_trip(model, tmp_path, "xgboost")
    assert files(tmp_path / "fresh") == {"model.json", "flavor.json"}
    assert isinstance(loaded, xgb.XGBClassifier)
    np.testing.assert_array_equal(loaded.predict(X_CANCER), model.predict(X_CANCER))
    np.testing.assert_array_equal(loaded.predict_proba(X_CANCER), model.predict_proba(X_CANCER))


def test_xgboost_regressor_round_trips_predictions(tmp_path: Path) -> None:
    model = xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(X_DIABETES, Y_DIABETES)
    loaded = round_trip(model, tmp_path, "xgboost")
    assert isinstance(loaded, xgb.XGBRegressor)
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), model.predict(X_DIABETES))


def test_xgboost_booster_round_trips_predictions(tmp_path: Path) -> None:
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgb.DMatrix(X_CANCER, label=Y_CANCER),
        num_boost_round=5,
    )
    loaded = round_trip(booster, tmp_path, "xgboost")
    expected = booster.predict(xgb.DMatrix(X_CANCER))
    np.testing.assert_array_equal(loaded.predict(X_CANCER), expected)


def test_lightgbm_binary_classifier_round_trips_through_text_format(tmp_path: Path) -> None:
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1).fit(X_CANCER, Y_CANCER)
    loaded = round_trip(model, tmp_path, "lightgbm")
    assert files(tmp_path / "fresh") == {"model.txt", "flavor.json"}
    np.testing.assert_array_equal(loaded.predict(X_CANCER), model.predict(X_CANCER))
    np.testing.assert_array_equal(
        loaded.predict_proba(X_CANCER),  # type: ignore[attr-defined]
        model.predict_proba(X_CANCER),
    )


def test_lightgbm_multiclass_classifier_keeps_its_string_classes(tmp_path: Path) -> None:
    features, target = load_iris(return_X_y=True, as_frame=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[target]
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1)
    model.fit(features, labels)
    loaded = round_trip(model, tmp_path, "lightgbm")
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    np.testing.assert_array_equal(
        loaded.predict_proba(features),  # type: ignore[attr-defined]
        model.predict_proba(features),
    )


def test_lightgbm_regressor_and_booster_round_trip_without_probabilities(tmp_path: Path) -> None:
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1).fit(X_DIABETES, Y_DIABETES)
    loaded = round_trip(model, tmp_path / "model", "lightgbm")
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), model.predict(X_DIABETES))
    assert not hasattr(loaded, "predict_proba")
    booster = round_trip(model.booster_, tmp_path / "booster", "lightgbm")
    np.testing.assert_array_equal(booster.predict(X_DIABETES), model.predict(X_DIABETES))


def test_lightgbm_classifier_with_custom_objective_is_refused(tmp_path: Path) -> None:
    def logloss(labels: Any, preds: Any) -> tuple[Any, Any]:
        p = 1.0 / (1.0 + np.exp(-preds))
        return p - labels, p * (1.0 - p)

    model = lgb.LGBMClassifier(n_estimators=2, objective=logloss, verbose=-1)
    model.fit(X_CANCER, Y_CANCER)
    with pytest.raises(InvalidArgument, match="custom objective function; save its booster_"):
        get_flavor("lightgbm").save(model, tmp_path)


class TinyNet(torch.nn.Module):
    """A model class of the user's own, defined only in this test module."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.out = torch.nn.Linear(10, 8), torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def small_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def as_tensor(frame: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(frame.to_numpy(), dtype=torch.float32)


@pytest.mark.parametrize("make", [small_network, TinyNet], ids=["Sequential", "own-class"])
def test_pytorch_module_round_trips_predictions(tmp_path: Path, make: Any) -> None:
    torch.manual_seed(0)
    model = make()
    loaded = round_trip(model, tmp_path, "pytorch")
    assert files(tmp_path / "fresh") == {"model.pt"}
    with torch.no_grad():
        expected = model(as_tensor(X_DIABETES)).numpy()
    predictions = loaded.predict(X_DIABETES)
    assert isinstance(predictions, np.ndarray)
    np.testing.assert_array_equal(predictions, expected)


def test_pytorch_exported_program_loads_without_its_class(tmp_path: Path) -> None:
    torch.manual_seed(0)
    exported = torch.export.export(
        TinyNet().eval(), (torch.zeros(2, 10),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    loaded = round_trip(exported, tmp_path, "pytorch")
    assert files(tmp_path / "fresh") == {"model.pt2"}
    with torch.no_grad():
        expected = exported.module()(as_tensor(X_DIABETES)).numpy()
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), expected)
    # a fresh interpreter, which cannot import this test module or TinyNet, loads it too
    X_DIABETES.to_parquet(tmp_path / "data.parquet")
    code = (
        "import sys, numpy as np, pandas as pd; from pathlib import Path; "
        "from ferryml.registry.flavors import get_flavor; "
        "here = Path(sys.argv[1]); m = get_flavor('pytorch').load(here / 'fresh'); "
        "np.save(here / 'out.npy', m.predict(pd.read_parquet(here / 'data.parquet')))"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=tmp_path)
    # float32 matrix products may round differently in another process (thread split)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-6)


# torch.jit.script warns that TorchScript is deprecated: the very reason it is refused
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_pytorch_torchscript_module_is_refused(tmp_path: Path) -> None:
    scripted = torch.jit.script(small_network())
    with pytest.raises(InvalidArgument, match="TorchScript modules are not saved"):
        flavor_for(scripted).save(scripted, tmp_path)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "tensor"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["proto", "bytes"])
def test_onnx_classifier_gives_labels_and_probabilities(
    tmp_path: Path, zipmap: bool, as_bytes: bool
) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_CANCER, Y_CANCER)
    converted = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, X_CANCER.shape[1]]))],
        options={"zipmap": zipmap},
    )
    assert isinstance(converted, onnx.ModelProto)
    loaded = round_trip(converted.SerializeToString() if as_bytes else converted, tmp_path, "onnx")
    assert files(tmp_path / "fresh") == {"model.onnx"}
    np.testing.assert_array_equal(loaded.predict(X_CANCER), model.predict(X_CANCER))
    proba = loaded.predict_proba(X_CANCER)  # type: ignore[attr-defined]
    assert proba.shape == (len(X_CANCER), 2)
    # ONNX Runtime computes in float32, scikit-learn in float64
    np.testing.assert_allclose(proba, model.predict_proba(X_CANCER), atol=1e-5)


def test_onnx_regressor_has_no_probabilities(tmp_path: Path) -> None:
    model = LinearRegression().fit(X_DIABETES, Y_DIABETES)
    converted = to_onnx(model, initial_types=[("input", FloatTensorType([None, 10]))])
    loaded = round_trip(converted, tmp_path, "onnx")
    assert not hasattr(loaded, "predict_proba")
    np.testing.assert_allclose(
        loaded.predict(X_DIABETES).ravel(), model.predict(X_DIABETES), rtol=1e-4
    )


def test_onnx_refuses_bytes_that_are_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="These 0 bytes are not an ONNX model"):
        get_flavor("onnx").save(b"", tmp_path)
    with pytest.raises(InvalidArgument, match="These 5 bytes are not an ONNX model"):
        get_flavor("onnx").save(b"hello", tmp_path)


def test_pyfunc_object_with_predict_round_trips(tmp_path: Path) -> None:
    loaded = round_trip(Doubler(2.0), tmp_path, "pyfunc")
    assert files(tmp_path / "fresh") == {"model.pkl"}
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), Doubler(2.0).predict(X_DIABETES))


def test_pyfunc_plain_function_is_wrapped_so_predict_calls_it(tmp_path: Path) -> None:
    loaded = round_trip(first_column_positive, tmp_path, "pyfunc")
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), first_column_positive(X_DIABETES))


def test_pyfunc_lambda_is_saved_by_value(tmp_path: Path) -> None:
    loaded = round_trip(lambda data: data["bmi"] * 10, tmp_path, "pyfunc")
    np.testing.assert_array_equal(loaded.predict(X_DIABETES), X_DIABETES["bmi"] * 10)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (make_pipeline(StandardScaler(), LogisticRegression()), "sklearn"),
        (LinearRegression(), "sklearn"),
        (xgb.XGBClassifier(), "xgboost"),  # also a scikit-learn estimator: order matters
        (lgb.LGBMRegressor(), "lightgbm"),  # likewise
        (torch.nn.Linear(2, 1), "pytorch"),
        (onnx.ModelProto(), "onnx"),
        (b"onnx bytes", "onnx"),
        (Doubler(1.0), "pyfunc"),
        (first_column_positive, "pyfunc"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_flavor_for_picks_the_most_specific_flavor(model: Any, expected: str) -> None:
    assert flavor_for(model).name == expected


def test_flavor_for_refuses_an_object_without_predict() -> None:
    with pytest.raises(InvalidArgument) as raised:
        flavor_for(StandardScaler())
    assert str(raised.value) == (
        "No flavor saves a model of type sklearn.preprocessing._data.StandardScaler: ferryml "
        "saves scikit-learn, XGBoost, LightGBM, PyTorch and ONNX models, and any object with "
        "a predict method."
    )
    with pytest.raises(InvalidArgument, match="^No flavor saves a model of type int: "):
        flavor_for(3)
    with pytest.raises(InvalidArgument, match="of type type: "):
        flavor_for(Doubler)  # the class, not an instance


def test_get_flavor_refuses_an_unknown_name() -> None:
    with pytest.raises(InvalidArgument) as raised:
        get_flavor("nope")
    assert str(raised.value) == (
        "Unknown model flavor 'nope'. Use one of: xgboost, lightgbm, pytorch, onnx, sklearn, "
        "pyfunc."
    )


def test_get_flavor_returns_each_flavor_by_its_name() -> None:
    assert [get_flavor(name).name for name in FLAVORS] == list(FLAVORS)


def test_require_a_missing_package_says_which_extra_to_install() -> None:
    with pytest.raises(InvalidArgument) as raised:
        require("no_such_pkg_xyz", "lightgbm")
    assert (
        str(raised.value) == "Loading this model needs LightGBM: pip install 'ferryml[lightgbm]'."
    )
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_requirements_pin_the_installed_versions() -> None:
    def version(name: str) -> str:
        return importlib.metadata.version(name).split("+")[0]

    expected = {
        "sklearn": [f"scikit-learn=={version('scikit-learn')}"],
        "lightgbm": [f"lightgbm=={version('lightgbm')}"],
        "pytorch": [f"torch=={version('torch')}"],
        "onnx": [f"onnxruntime=={version('onnxruntime')}"],
        "pyfunc": [f"cloudpickle=={version('cloudpickle')}"],
    }
    for name, pins in expected.items():
        assert get_flavor(name).requirements() == pins
    (xgboost_pin,) = get_flavor("xgboost").requirements()
    dist, _, pinned = xgboost_pin.partition("==")
    assert dist in ("xgboost-cpu", "xgboost")
    assert pinned == version(dist) == xgb.__version__


def test_choosing_a_flavor_imports_no_model_library() -> None:
    code = (
        "import sys; from ferryml.registry.flavors import flavor_for; "
        "assert flavor_for(lambda df: df).name == 'pyfunc'; "
        "print([m for m in ('sklearn', 'xgboost', 'lightgbm', 'torch', 'onnx', 'onnxruntime') "
        "if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
