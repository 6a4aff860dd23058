"""ferryml.autolog() on real scikit-learn fits: what it logs, where, and that it never breaks
a fit."""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import ferryml as ferry
from ferryml.config import Settings
from ferryml.store.entities import Run, RunStatus
from ferryml.tracking.autolog import data_digest

CLASSIFIER_METRICS = {
    "training_score",
    "training_accuracy_score",
    "training_precision_score",
    "training_recall_score",
    "training_f1_score",
    "training_log_loss",
    "training_roc_auc",
}
REGRESSOR_METRICS = {
    "training_score",
    "training_mean_squared_error",
    "training_root_mean_squared_error",
    "training_mean_absolute_error",
    "training_r2_score",
}


@pytest.fixture
def auto(sqlite_fluent: Settings) -> Iterator[Settings]:
    """autolog() on a fresh SQLite store."""
    ferry.autolog()
    try:
        yield sqlite_fluent
    finally:
        ferry.autolog(disable=True)


def _classification(rows: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(n_samples=rows, n_features=6, random_state=0)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), y


def _runs() -> list[Run]:
    return list(ferry.search_runs())


def _only_run() -> Run:
    runs = _runs()
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return ferry.get_run(runs[0].info.run_id)


def test_a_fit_outside_a_run_logs_params_metrics_input_and_model_in_its_own_run(
    auto: Settings,
) -> None:
    X, y = _classification()
    clf = LogisticRegression(C=0.5, max_iter=500).fit(X, y)
    assert ferry.active_run() is None  # the run autolog started is ended
    run = _only_run()
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params["C"] == "0.5" and run.data.params["max_iter"] == "500"
    assert run.data.tags["estimator_name"] == "LogisticRegression"
    assert set(run.data.params) == set(clf.get_params(deep=True))
    assert set(run.data.metrics) >= CLASSIFIER_METRICS
    assert run.data.metrics["training_accuracy_score"] == pytest.approx(
        accuracy_score(y, clf.predict(X))
    )
    assert run.data.metrics["training_score"] == run.data.metrics["training_accuracy_score"]
    [data] = run.inputs
    assert (data.name, data.digest, data.context) == ("dataset", data_digest(X, y), "training")
    loaded = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.signature is not None and loaded.signature.columns == list(X.columns)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_a_fit_inside_an_active_run_logs_there_and_leaves_it_running(auto: Settings) -> None:
    X, y = _classification()
    with ferry.start_run() as active:
        LogisticRegression().fit(X, y)
        assert ferry.active_run() is active
        assert ferry.get_run(active.run_id).info.status is RunStatus.RUNNING
    run = _only_run()
    assert run.info.run_id == active.run_id
    assert set(run.data.metrics) >= CLASSIFIER_METRICS


def test_a_pipeline_logs_once_with_its_steps_params(auto: Settings) -> None:
    X, y = _classification()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=2.0)).fit(X, y)
    run = _only_run()  # the steps' own fits made no runs
    assert run.data.params["logisticregression__C"] == "2.0"
    assert "standardscaler__with_mean" in run.data.params
    assert "C" not in run.data.params  # the steps' own fits logged nothing
    assert set(run.data.metrics) >= CLASSIFIER_METRICS
    loaded = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(loaded.raw, Pipeline)
    np.testing.assert_allclose(loaded.predict_proba(X), pipe.predict_proba(X))


def test_a_grid_search_logs_its_best_params_score_and_estimator_once(auto: Settings) -> None:
    X, y = _classification()
    search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=3).fit(X, y)
    run = _only_run()  # six candidate fits and the refit made no runs
    assert run.data.params["best_C"] == str(search.best_params_["C"])
    assert run.data.params["estimator__C"] == "1.0"
    assert run.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert set(run.data.metrics) >= CLASSIFIER_METRICS
    best = ferry.load_model(f"runs:/{run.info.run_id}/best_estimator")
    whole = ferry.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(best.predict(X), search.predict(X))
    np.testing.assert_array_equal(whole.predict(X), search.predict(X))


def test_a_regressor_logs_the_regression_metrics(auto: Settings) -> None:
    X, y = make_regression(n_samples=200, n_features=4, noise=5.0, random_state=1)
    reg = Ridge().fit(X, y)
    run = _only_run()
    metrics = run.data.metrics
    assert set(metrics) >= REGRESSOR_METRICS
    assert "training_accuracy_score" not in metrics
    mse = mean_squared_error(y, reg.predict(X))
    assert metrics["training_mean_squared_error"] == pytest.approx(mse)
    assert metrics["training_root_mean_squared_error"] == pytest.approx(math.sqrt(mse))
    assert metrics["training_r2_score"] == pytest.approx(r2_score(y, reg.predict(X)))
    loaded = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.signature is not None and loaded.signature.columns == ["0", "1", "2", "3"]
    # the raw model: a frame's column names would make scikit-learn warn (fitted on an array)
    np.testing.assert_allclose(loaded.raw.predict(X), reg.predict(X))


def test_disable_restores_every_original_fit(auto: Settings) -> None:
    ferry.autolog(disable=True)
    originals = {c: c.__dict__["fit"] for c in (LogisticRegression, Pipeline, BaseSearchCV)}
    ferry.autolog()
    assert all(c.__dict__["fit"] is not f for c, f in originals.items())
    ferry.autolog(disable=True)
    assert all(c.__dict__["fit"] is f for c, f in originals.items())
    assert "__init_subclass__" not in BaseEstimator.__dict__
    X, y = _classification()
    LogisticRegression().fit(X, y)
    assert _runs() == []


class _Majority(ClassifierMixin, BaseEstimator):
    def fit(self, X: Any, y: Any) -> _Majority:
        self.classes_, counts = np.unique(y, return_counts=True)
        self.label_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.label_)


def test_an_estimator_class_defined_after_autolog_is_logged_too(auto: Settings) -> None:
    ferry.autolog(log_models=False)  # pickle cannot save a class local to a function

    class Later(_Majority):
        def fit(self, X: Any, y: Any) -> Later:  # its own: only the hook can wrap it
            self.classes_ = np.unique(y)
            self.label_ = self.classes_[0]
            return self

    X, y = _classification()
    Later().fit(X, y)
    run = _only_run()
    assert run.data.metrics["training_accuracy_score"] == pytest.approx(np.mean(y == 0))


def test_a_failing_fit_leaves_a_failed_run_and_raises(auto: Settings) -> None:
    X, y = _classification()
    X.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(X, y)
    assert ferry.active_run() is None
    run = _only_run()
    assert run.info.status is RunStatus.FAILED
    assert "ValueError" in (run.info.failure or "")
    assert run.data.params["C"] == "1.0"  # logged before the fit


class _Unpicklable(_Majority):
    def fit(self, X: Any, y: Any) -> _Unpicklable:
        super().fit(X, y)
        self.lock_ = threading.Lock()  # the model cannot be saved
        return self


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not log a fit" in r.getMessage()]


def test_a_logging_failure_is_logged_once_and_the_fit_stands(
    auto: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = _classification()
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # code run with warnings as errors still fits
        model = _Unpicklable().fit(X, y)
    assert model.label_ in (0, 1)
    (failure,) = _failures(caplog)
    assert "the fit's result stands" in failure
    run = _only_run()
    assert run.info.status is RunStatus.FINISHED
    assert "training_accuracy_score" in run.data.metrics  # what could be logged was
    caplog.clear()
    _Unpicklable().fit(X, y)
    assert _failures(caplog) == []  # a second failure is not shown again
    assert len(_runs()) == 2


def test_a_param_conflict_in_the_active_run_does_not_break_the_fit(
    auto: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = _classification()
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    with ferry.start_run() as active:
        ferry.log_param("C", "other")
        clf = LogisticRegression().fit(X, y)
    assert "Conflict" in _failures(caplog)[0]
    assert clf.coef_.shape == (1, 6)
    run = ferry.get_run(active.run_id)
    assert run.data.params["C"] == "other"
    assert set(run.data.metrics) >= CLASSIFIER_METRICS


def test_the_trees_a_forest_fits_on_worker_threads_log_nothing(auto: Settings) -> None:
    from sklearn.ensemble import IsolationForest

    X, _ = _classification()
    IsolationForest(n_estimators=6, n_jobs=2, random_state=0).fit(X)  # trees on threads
    (run,) = _runs()  # one run: the trees' fits are the forest's own
    assert run.data.params["n_estimators"] == "6" and "splitter" not in run.data.params


def test_the_digest_follows_the_data() -> None:
    X, y = _classification(50)
    assert data_digest(X, y) == data_digest(X.copy(), y.copy())
    changed = X.copy()
    changed.iloc[3, 2] += 1.0
    assert data_digest(changed, y) != data_digest(X, y)
    assert data_digest(X.to_numpy(), y) != data_digest(X, y)  # column names count


NOTEBOOK_CLASS = """
import cloudpickle
import ferryml as ferry
from sklearn.base import BaseEstimator

ferry.autolog()


class Mine(BaseEstimator):  # defined in __main__, as in a notebook
    def fit(self, X, y=None):
        return self


copied = cloudpickle.loads(cloudpickle.dumps(Mine()))  # what loky and Dask send
print(type(copied).__name__)
"""


def test_an_estimator_defined_in_a_notebook_still_travels_to_workers(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "FERRY_HOME": str(tmp_path / ".ferry")}
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_CLASS], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Mine"
