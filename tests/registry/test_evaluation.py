"""evaluate_predictor: metrics equal scikit-learn's, slices, business metrics, permutation
importance, latency, plots, the JSON form, and every bad-input path."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferryml.errors import InvalidArgument, MissingExtra
from ferryml.registry.evaluation import Evaluation, SliceSpec, evaluate_predictor

PNG = b"\x89PNG\r\n\x1a\n"


class Labels:
    """A predictor without predict_proba: only class labels."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: pd.DataFrame) -> Any:
        return self.model.predict(data)


class Probabilities(Labels):
    """Labels and probabilities, but no ``classes_``: columns follow the sorted labels."""

    def predict_proba(self, data: pd.DataFrame) -> Any:
        return self.model.predict_proba(data)


class Recording(Labels):
    """Remembers how many rows each predict call received."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.calls: list[int] = []

    def predict(self, data: pd.DataFrame) -> Any:
        self.calls.append(len(data))
        return super().predict(data)


class Failing:
    def predict(self, data: pd.DataFrame) -> Any:
        raise KeyError("column 'age' missing")


def _cancer() -> tuple[Any, pd.DataFrame]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    return model, X.assign(target=y)


def _iris() -> tuple[Any, pd.DataFrame]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    return model, X.assign(species=y)


def _diabetes() -> tuple[Any, pd.DataFrame]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return LinearRegression().fit(X, y), X.assign(progression=y)


def _evaluate(model: Any, data: pd.DataFrame, target: str, task: Any, **kw: Any) -> Evaluation:
    return evaluate_predictor(model, data, target=target, task=task, **kw)


# -- metrics -------------------------------------------------------------------------------


def test_binary_metrics_equal_sklearns_for_the_positive_class() -> None:
    model, data = _cancer()
    X, y = data.drop(columns="target"), data["target"]
    pred, proba = model.predict(X), model.predict_proba(X)
    ev = _evaluate(model, data, "target", "classification", importance=False, plots=False)
    assert ev.task == "classification" and ev.rows == len(data)
    assert ev.metrics == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "f1": skm.f1_score(y, pred),
            "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
            "log_loss": skm.log_loss(y, proba),
        }
    )
    assert ev.labels == [0, 1]
    assert ev.confusion == skm.confusion_matrix(y, pred).tolist()


def test_binary_string_labels_take_the_larger_label_as_positive() -> None:
    model, data = _cancer()
    words = data.assign(target=data["target"].map({0: "malignant", 1: "no"}))
    X, y = words.drop(columns="target"), words["target"]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    ev = _evaluate(model, words, "target", "classification", importance=False, plots=False)
    pred = model.predict(X)
    assert ev.labels == ["malignant", "no"]
    assert ev.metrics["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="no"))
    assert ev.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y == "no", model.predict_proba(X)[:, 1])
    )


def test_multiclass_metrics_are_macro_averages_and_one_vs_rest_roc_auc() -> None:
    model, data = _iris()
    X, y = data.drop(columns="species"), data["species"]
    pred, proba = model.predict(X), model.predict_proba(X)
    ev = _evaluate(model, data, "species", "classification", importance=False, plots=False)
    assert ev.metrics == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, average="macro"),
            "recall": skm.recall_score(y, pred, average="macro"),
            "f1": skm.f1_score(y, pred, average="macro"),
            "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
            "log_loss": skm.log_loss(y, proba),
        }
    )
    assert ev.labels == [0, 1, 2] and len(ev.confusion or []) == 3


def test_regression_metrics_equal_sklearns() -> None:
    model, data = _diabetes()
    X, y = data.drop(columns="progression"), data["progression"]
    pred = model.predict(X)
    ev = _evaluate(model, data, "progression", "regression", importance=False, plots=False)
    assert ev.metrics == pytest.approx(
        {
            "mae": skm.mean_absolute_error(y, pred),
            "rmse": skm.root_mean_squared_error(y, pred),
            "r2": skm.r2_score(y, pred),
        }
    )
    assert ev.confusion is None and ev.labels is None


def test_a_classifier_without_predict_proba_gets_no_probability_metrics() -> None:
    model, data = _cancer()
    ev = _evaluate(Labels(model), data, "target", "classification", plots=False)
    assert set(ev.metrics) == {"accuracy", "precision", "recall", "f1"}
    assert ev.importance_metric == "accuracy"


def test_predict_proba_without_classes_follows_the_sorted_labels() -> None:
    model, data = _iris()
    X, y = data.drop(columns="species"), data["species"]
    ev = _evaluate(Probabilities(model), data, "species", "classification", plots=False)
    assert ev.metrics["log_loss"] == pytest.approx(skm.log_loss(y, model.predict_proba(X)))


def test_latency_is_measured_per_row() -> None:
    model, data = _diabetes()
    ev = _evaluate(model, data, "progression", "regression", importance=False, plots=False)
    assert 0 < ev.latency_ms_per_row < 1000


# -- slices --------------------------------------------------------------------------------


def test_slices_by_a_categorical_column_have_the_metrics_of_their_rows() -> None:
    model, data = _cancer()
    plans = np.random.default_rng(0).choice(["free", "pro", "team"], size=len(data))
    data = data.assign(plan=plans)
    model.fit(data.drop(columns=["target", "plan"]), data["target"])
    features = data.drop(columns=["target", "plan"])

    class DropPlan(Labels):
        def predict(self, frame: pd.DataFrame) -> Any:
            return self.model.predict(frame.drop(columns="plan"))

    ev = _evaluate(DropPlan(model), data, "target", "classification", slices=["plan"])
    assert [s.value for s in ev.slices] == ["plan=free", "plan=pro", "plan=team"]
    assert sum(s.rows for s in ev.slices) == len(data)
    pro = ev.slices[1]
    rows = data["plan"] == "pro"
    pred = model.predict(features[rows])
    assert pro.column == "plan" and pro.rows == int(rows.sum())
    assert pro.metrics["f1"] == pytest.approx(skm.f1_score(data["target"][rows], pred))
    assert set(pro.metrics) == set(ev.metrics)


def test_slices_by_a_numeric_column_use_quantile_bins() -> None:
    model, data = _diabetes()
    ev = _evaluate(
        model,
        data,
        "progression",
        "regression",
        slices=["bmi", SliceSpec("age", bins=2)],
        importance=False,
        plots=False,
    )
    bmi = [s for s in ev.slices if s.column == "bmi"]
    age = [s for s in ev.slices if s.column == "age"]
    assert len(bmi) == 4 and len(age) == 2
    assert re.fullmatch(r"bmi in \[-?[\d.]+, -?[\d.]+\]", bmi[0].value)
    assert all(re.fullmatch(r"bmi in \(-?[\d.]+, -?[\d.]+\]", s.value) for s in bmi[1:])
    assert sum(s.rows for s in bmi) == sum(s.rows for s in age) == len(data)
    low = data["bmi"] <= data["bmi"].quantile(0.25)
    pred = model.predict(data.drop(columns="progression")[low])
    assert bmi[0].rows == int(low.sum())
    assert bmi[0].metrics["mae"] == pytest.approx(
        skm.mean_absolute_error(data["progression"][low], pred)
    )


def test_a_low_cardinality_numeric_column_is_sliced_by_value() -> None:
    model, data = _diabetes()
    ev = _evaluate(
        model, data, "progression", "regression", slices=["sex"], importance=False, plots=False
    )
    assert len(ev.slices) == 2 and all(s.value.startswith("sex=") for s in ev.slices)


def test_metrics_undefined_on_a_slice_are_left_out() -> None:
    model, data = _cancer()
    ev = _evaluate(model, data, "target", "classification", slices=["target"], plots=False)
    assert [s.value for s in ev.slices] == ["target=0", "target=1"]
    for s in ev.slices:
        assert "roc_auc" not in s.metrics
        assert {"accuracy", "log_loss"} <= set(s.metrics)
        assert all(math.isfinite(v) for v in s.metrics.values())


def test_missing_values_of_a_slice_column_form_their_own_slice() -> None:
    model, data = _diabetes()
    data = data.assign(region=["north", None, "south"] * (len(data) // 3) + ["north"])

    class DropRegion(Labels):
        def predict(self, frame: pd.DataFrame) -> Any:
            return self.model.predict(frame.drop(columns="region"))

    ev = _evaluate(
        DropRegion(model), data, "progression", "regression", slices=["region"], plots=False
    )
    assert [s.value for s in ev.slices] == ["region=north", "region=south", "region is missing"]
    assert ev.slices[2].rows == len(data) // 3


# -- business metrics ----------------------------------------------------------------------


def _profit(y_true: np.ndarray, y_pred: np.ndarray, features: pd.DataFrame) -> float:
    tp = int(((y_true == 1) & (y_pred == 1)).sum())
    fp = int(((y_true == 0) & (y_pred == 1)).sum())
    return 10.0 * tp - 3.0 * fp


def test_business_metrics_are_computed_overall_and_per_slice() -> None:
    model, data = _cancer()
    X, y = data.drop(columns="target"), data["target"].to_numpy()
    pred = model.predict(X)
    ev = _evaluate(
        model,
        data,
        "target",
        "classification",
        slices=["mean radius"],
        business_metrics={"profit": _profit},
        importance=False,
        plots=False,
    )
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert ev.metrics["profit"] == 10 * tp - 3 * fp
    assert sum(s.metrics["profit"] for s in ev.slices) == ev.metrics["profit"]


def test_a_business_metric_that_raises_is_named_in_the_error() -> None:
    model, data = _cancer()

    def broken(y_true: np.ndarray, y_pred: np.ndarray, features: pd.DataFrame) -> float:
        return features["no such column"].sum()

    with pytest.raises(InvalidArgument, match=r"business metric 'churn_cost' failed: KeyError"):
        _evaluate(model, data, "target", "classification", business_metrics={"churn_cost": broken})


@pytest.mark.parametrize("value", ["12", None, float("nan"), True])
def test_a_business_metric_that_returns_no_number_is_named_in_the_error(value: Any) -> None:
    model, data = _cancer()
    with pytest.raises(InvalidArgument, match=r"business metric 'odd' returned .*finite number"):
        _evaluate(
            model,
            data,
            "target",
            "classification",
            business_metrics={"odd": lambda y, p, f: value},
            plots=False,
        )


def test_a_business_metric_may_not_shadow_a_built_in_metric() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match=r"\['r2'\] clash with built-in"):
        _evaluate(model, data, "progression", "regression", business_metrics={"r2": _profit})


# -- importance ----------------------------------------------------------------------------


def test_importance_ranks_an_informative_feature_above_noise() -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X[["worst radius", "mean texture"]].assign(
        noise=np.random.default_rng(1).normal(size=len(X))
    )
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    ev = _evaluate(model, X.assign(target=y), "target", "classification", plots=False)
    assert ev.importance_metric == "roc_auc"
    assert list(ev.importance) == ["worst radius", "mean texture", "noise"]
    assert ev.importance["worst radius"] > 0.1
    assert abs(ev.importance["noise"]) < 0.01


def test_regression_importance_uses_r2() -> None:
    model, data = _diabetes()
    ev = _evaluate(model, data, "progression", "regression", plots=False)
    assert ev.importance_metric == "r2"
    assert ev.importance["bmi"] > ev.importance["age"]


def test_importance_runs_on_at_most_max_rows_and_is_repeatable() -> None:
    model, data = _diabetes()
    recording = Recording(model)
    first = _evaluate(
        recording,
        data,
        "progression",
        "regression",
        importance_repeats=2,
        max_rows_importance=100,
        plots=False,
    )
    features = len(data.columns) - 1
    assert recording.calls[3:] == [100] * (1 + 2 * features)  # after the three timed calls
    again = _evaluate(
        model, data, "progression", "regression", importance_repeats=2, max_rows_importance=100
    )
    assert again.importance == first.importance


def test_importance_can_be_turned_off() -> None:
    model, data = _diabetes()
    ev = _evaluate(model, data, "progression", "regression", importance=False, plots=False)
    assert ev.importance == {} and ev.importance_metric is None


# -- plots and the JSON form ---------------------------------------------------------------


def test_binary_classifiers_get_confusion_and_calibration_plots() -> None:
    model, data = _cancer()
    ev = _evaluate(model, data, "target", "classification", importance=False)
    assert set(ev.plots) == {"confusion_matrix.png", "calibration.png"}
    assert all(png.startswith(PNG) for png in ev.plots.values())


def test_multiclass_classifiers_get_a_confusion_plot_only() -> None:
    model, data = _iris()
    ev = _evaluate(model, data, "species", "classification", importance=False)
    assert (
        list(ev.plots) == ["confusion_matrix.png"] and ev.plots["confusion_matrix.png"][:8] == PNG
    )


def test_regressions_get_a_residual_plot() -> None:
    model, data = _diabetes()
    ev = _evaluate(model, data, "progression", "regression", importance=False)
    assert list(ev.plots) == ["residuals.png"] and ev.plots["residuals.png"].startswith(PNG)


def test_plots_can_be_turned_off() -> None:
    model, data = _diabetes()
    assert _evaluate(model, data, "progression", "regression", plots=False).plots == {}


def test_to_dict_is_json_and_lists_plot_names_without_bytes() -> None:
    model, data = _cancer()
    data = data.assign(plan=np.where(data["mean radius"] > 14, "pro", "free"))
    model.fit(data.drop(columns=["target", "plan"]), data["target"])

    class DropPlan(Probabilities):
        def predict(self, frame: pd.DataFrame) -> Any:
            return self.model.predict(frame.drop(columns="plan"))

        def predict_proba(self, frame: pd.DataFrame) -> Any:
            return self.model.predict_proba(frame.drop(columns="plan"))

    ev = _evaluate(
        DropPlan(model),
        data,
        "target",
        "classification",
        slices=["plan", "mean area"],
        business_metrics={"profit": _profit},
    )
    back = json.loads(json.dumps(ev.to_dict()))
    assert back["plots"] == ["calibration.png", "confusion_matrix.png"]
    assert back["metrics"] == ev.metrics and back["labels"] == [0, 1]
    assert back["slices"][0] == {
        "column": "plan",
        "value": "plan=free",
        "rows": ev.slices[0].rows,
        "metrics": ev.slices[0].metrics,
    }


# -- bad input -----------------------------------------------------------------------------


def test_a_missing_target_column_is_named() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match=r"target column 'y' is not in the data .*target="):
        _evaluate(model, data, "y", "regression")


def test_empty_data_is_refused() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match="data has no rows"):
        _evaluate(model, data.iloc[:0], "progression", "regression")


def test_data_that_is_not_a_frame_is_refused() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match="data must be a pandas DataFrame; got ndarray"):
        _evaluate(model, data.to_numpy(), "progression", "regression")


def test_an_unknown_task_is_refused() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match=r"task must be .*; got 'ranking'"):
        _evaluate(model, data, "progression", "ranking")


def test_a_missing_slice_column_is_named() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match=r"slice column 'plan' is not in the data"):
        _evaluate(model, data, "progression", "regression", slices=["plan"])


def test_bins_on_a_non_numeric_column_are_refused() -> None:
    model, data = _diabetes()
    data = data.assign(plan="pro")
    with pytest.raises(InvalidArgument, match=r"bins=3 for slice column 'plan': bins need a"):
        _evaluate(model, data, "progression", "regression", slices=[SliceSpec("plan", bins=3)])


def test_fewer_than_one_bin_is_refused() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match=r"bins=0 for slice column 'bmi'"):
        _evaluate(model, data, "progression", "regression", slices=[SliceSpec("bmi", bins=0)])


def test_a_high_cardinality_text_column_is_refused_as_a_slice() -> None:
    model, data = _diabetes()
    data = data.assign(user=[f"u{i}" for i in range(len(data))])
    with pytest.raises(InvalidArgument, match=r"'user' has 442 distinct values, more than 100"):
        _evaluate(model, data, "progression", "regression", slices=["user"])


def test_a_slice_that_is_neither_name_nor_spec_is_refused() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match="a slice is a column name or a SliceSpec; got 3"):
        _evaluate(model, data, "progression", "regression", slices=[3])


def test_a_non_numeric_regression_target_is_refused() -> None:
    model, data = _diabetes()
    data = data.assign(progression=data["progression"].astype(str))
    with pytest.raises(InvalidArgument, match=r"target column 'progression' has dtype .*numbers"):
        _evaluate(model, data, "progression", "regression")


def test_a_target_with_missing_values_is_refused() -> None:
    model, data = _diabetes()
    data.loc[3, "progression"] = np.nan
    with pytest.raises(InvalidArgument, match=r"'progression' has 1 missing values; drop or fill"):
        _evaluate(model, data, "progression", "regression")


def test_importance_settings_out_of_range_are_refused() -> None:
    model, data = _diabetes()
    with pytest.raises(InvalidArgument, match="importance_repeats must be >= 1"):
        _evaluate(model, data, "progression", "regression", importance_repeats=0)


def test_a_model_that_fails_to_predict_is_reported() -> None:
    _, data = _diabetes()
    with pytest.raises(InvalidArgument, match=r"the model failed to predict: KeyError") as info:
        _evaluate(Failing(), data, "progression", "regression")
    assert isinstance(info.value.__cause__, KeyError)


def test_a_model_returning_the_wrong_number_of_predictions_is_reported() -> None:
    model, data = _diabetes()

    class Short(Labels):
        def predict(self, frame: pd.DataFrame) -> Any:
            return self.model.predict(frame)[:-1]

    with pytest.raises(InvalidArgument, match=r"shape \(441,\) for 442 rows"):
        _evaluate(Short(model), data, "progression", "regression")


def test_a_classifier_evaluated_as_a_regression_is_reported() -> None:
    model, data = _cancer()
    words = data.assign(target=data["target"].map({0: "malignant", 1: "benign"}))
    model.fit(words.drop(columns="target"), words["target"])
    with pytest.raises(InvalidArgument, match="non-numeric values .* task='classification'"):
        _evaluate(model, data, "target", "regression")


def test_labels_of_another_type_than_the_target_are_reported() -> None:
    model, data = _cancer()
    words = data.assign(target=data["target"].map({0: "malignant", 1: "benign"}))
    model.fit(words.drop(columns="target"), words["target"])
    with pytest.raises(InvalidArgument, match="Check that the target holds what the model"):
        _evaluate(Labels(model), data, "target", "classification")


def test_a_model_that_fails_to_predict_probabilities_is_reported() -> None:
    model, data = _cancer()

    class BrokenProba(Labels):
        def predict_proba(self, frame: pd.DataFrame) -> Any:
            raise RuntimeError("no calibrator")

    with pytest.raises(
        InvalidArgument, match="the model failed to predict probabilities: RuntimeError"
    ):
        _evaluate(BrokenProba(model), data, "target", "classification")


def test_probabilities_of_the_wrong_shape_are_reported() -> None:
    model, data = _cancer()

    class Flat(Labels):
        def predict_proba(self, frame: pd.DataFrame) -> Any:
            return self.model.predict_proba(frame)[:, 1]

    with pytest.raises(InvalidArgument, match=r"predict_proba returned shape \(569,\) for 569"):
        _evaluate(Flat(model), data, "target", "classification")


def test_probability_columns_that_cannot_be_matched_to_classes_are_reported() -> None:
    model, data = _iris()
    two = data[data["species"] < 2]

    class TwoLabels(Probabilities):
        def predict(self, frame: pd.DataFrame) -> Any:
            return np.minimum(self.model.predict(frame), 1)

    with pytest.raises(InvalidArgument, match="3 columns but 2 classes .* no classes_"):
        _evaluate(TwoLabels(model), two, "species", "classification")


def test_true_classes_the_model_does_not_know_are_reported() -> None:
    model, data = _iris()
    binary = data["species"] < 2
    model.fit(data[binary].drop(columns="species"), data[binary]["species"])
    with pytest.raises(InvalidArgument, match=r"classes \['2'\] are not among .* \[0, 1\]"):
        _evaluate(model, data, "species", "classification")


def test_errors_of_ferryml_from_the_predictor_pass_through_unchanged() -> None:
    _, data = _diabetes()

    class Checked:
        def predict(self, frame: pd.DataFrame) -> Any:
            raise InvalidArgument("column 'bmi' should be float64, got object")

    with pytest.raises(InvalidArgument, match="^column 'bmi' should be float64, got object$"):
        _evaluate(Checked(), data, "progression", "regression")


def test_plots_without_matplotlib_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model, data = _diabetes()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    with pytest.raises(MissingExtra, match=r"pip install 'ferryml\[plot\]', or pass plots="):
        _evaluate(model, data, "progression", "regression", importance=False)


def test_one_row_gets_the_metrics_defined_on_one_row() -> None:
    model, data = _diabetes()
    ev = _evaluate(model, data.iloc[:1], "progression", "regression", plots=False)
    assert set(ev.metrics) == {"mae", "rmse"} and ev.importance == {}


def test_multiclass_slices_missing_a_class_leave_roc_auc_out() -> None:
    model, data = _iris()
    ev = _evaluate(model, data, "species", "classification", slices=["species"], plots=False)
    assert len(ev.slices) == 3
    assert all("roc_auc" not in s.metrics and "log_loss" in s.metrics for s in ev.slices)
