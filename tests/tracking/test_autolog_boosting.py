"""ferryml.autolog() on real XGBoost and LightGBM trainings, native and through their
scikit-learn wrappers: what it logs, where, once per fit, and that it never breaks one."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ferryml as ferry
from ferryml.config import Settings
from ferryml.store.entities import Run, RunStatus

LGB_QUIET = {"objective": "binary", "verbose": -1, "seed": 0}


@pytest.fixture
def auto(sqlite_fluent: Settings) -> Iterator[ferry.FerryClient]:
    """autolog() on a fresh SQLite store, and a client reading that store."""
    client = ferry.FerryClient(sqlite_fluent)
    ferry.autolog()
    try:
        yield client
    finally:
        ferry.autolog(disable=True)
        client.close()


def _data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    X, y = make_classification(n_samples=400, n_features=5, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    return frame[:300], y[:300], frame[300:], y[300:]


def _only_run() -> Run:
    runs = list(ferry.search_runs())
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return ferry.get_run(runs[0].info.run_id)


def _history(client: ferry.FerryClient, run: Run, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]


def _artifact(client: ferry.FerryClient, run: Run, path: str, tmp_path: Path) -> Any:
    local = client.download_artifacts(run.info.run_id, path, tmp_path / "dl")
    return json.loads(local.read_text())


def test_xgboost_train_logs_params_each_rounds_metrics_importances_and_the_booster(
    auto: ferry.FerryClient, tmp_path: Path
) -> None:
    X, y, Xv, yv = _data()
    train, valid = xgb.DMatrix(X, y), xgb.DMatrix(Xv, yv)
    seen: dict[str, Any] = {}
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eval_metric": ["logloss", "auc"]},
        train,
        num_boost_round=12,
        evals=[(train, "train"), (valid, "validation_0")],
        evals_result=seen,
        verbose_eval=False,
    )
    assert ferry.active_run() is None
    run = _only_run()
    assert run.info.status is RunStatus.FINISHED
    assert run.data.tags["ferryml.autolog"] == "xgboost"
    params = run.data.params
    assert (params["max_depth"], params["num_boost_round"], params["objective"]) == (
        "3",
        "12",
        "binary:logistic",
    )
    assert "dtrain" not in params and "evals" not in params
    for data in ("train", "validation_0"):
        for metric in ("logloss", "auc"):
            history = _history(auto, run, f"{data}-{metric}")
            assert [s for s, _ in history] == list(range(12))  # one value per round
            np.testing.assert_allclose([v for _, v in history], seen[data][metric])
    assert "best_iteration" not in run.data.metrics  # no early stopping asked for
    assert _artifact(auto, run, "feature_importance_weight.json", tmp_path) == booster.get_score(
        importance_type="weight"
    )
    assert _artifact(auto, run, "feature_importance_gain.json", tmp_path) == pytest.approx(
        booster.get_score(importance_type="gain")
    )
    model = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert model.signature is not None and model.signature.columns == list(X.columns)
    np.testing.assert_array_equal(model.predict(Xv), booster.predict(valid))


def test_xgboost_early_stopping_logs_best_and_stopped_iteration_as_mlflow_does(
    auto: ferry.FerryClient,
) -> None:
    X, y, Xv, yv = _data()
    valid = xgb.DMatrix(Xv, yv)
    seen: dict[str, Any] = {}
    booster = xgb.train(
        {"objective": "binary:logistic", "eta": 0.9, "max_depth": 6},
        xgb.DMatrix(X, y),
        num_boost_round=300,
        evals=[(valid, "validation_0")],
        evals_result=seen,
        early_stopping_rounds=3,
        verbose_eval=False,
    )
    rounds = booster.num_boosted_rounds()
    assert rounds < 300  # it did stop early
    run = _only_run()
    assert run.data.metrics["best_iteration"] == booster.best_iteration
    assert run.data.metrics["stopped_iteration"] == rounds - 1
    history = _history(auto, run, "validation_0-logloss")
    assert [s for s, _ in history] == list(range(rounds + 1))  # the best one past the last
    assert history[-1][1] == pytest.approx(seen["validation_0"]["logloss"][booster.best_iteration])


def test_xgboost_train_with_evals_given_positionally_is_logged_as_xgboost_takes_it(
    auto: ferry.FerryClient,
) -> None:
    X, y, Xv, yv = _data()
    seen: dict[str, Any] = {}
    train, valid = xgb.DMatrix(X, y), xgb.DMatrix(Xv, yv)
    with pytest.warns(FutureWarning, match="evals"):  # XGBoost's own, as without autolog
        xgb.train({"max_depth": 2}, train, 6, [(valid, "v")], evals_result=seen)  # its tutorial
    run = _only_run()
    assert run.data.params["num_boost_round"] == "6" and "evals" not in run.data.params
    np.testing.assert_allclose([v for _, v in _history(auto, run, "v-rmse")], seen["v"]["rmse"])


def test_resumed_trainings_count_best_and_stopped_iteration_from_the_models_first_round(
    auto: ferry.FerryClient,
) -> None:
    X, y, Xv, yv = _data()
    xgb_params = {"objective": "binary:logistic", "eta": 0.9}
    first = xgb.train(xgb_params, xgb.DMatrix(X, y), 20)
    seen: dict[str, Any] = {}
    with ferry.start_run() as xgb_run:
        booster = xgb.train(
            xgb_params,
            xgb.DMatrix(X, y),
            200,
            evals=[(xgb.DMatrix(Xv, yv), "v")],
            evals_result=seen,
            early_stopping_rounds=3,
            xgb_model=first,
            verbose_eval=False,
        )
    new = len(seen["v"]["logloss"])
    assert booster.best_iteration >= 20 and new < 180  # counted from round 0; stopped early
    run = ferry.get_run(xgb_run.info.run_id)
    assert run.data.metrics["best_iteration"] == booster.best_iteration
    assert run.data.metrics["stopped_iteration"] == booster.num_boosted_rounds() - 1 == 20 + new - 1
    history = _history(auto, run, "v-logloss")
    assert [s for s, _ in history] == list(range(new + 1))  # the best round's one past the last
    assert history[-1][1] == pytest.approx(seen["v"]["logloss"][booster.best_iteration - 20])

    first_lgb = lgb.train(LGB_QUIET, lgb.Dataset(X, y), 20)
    seen = {}
    with ferry.start_run() as lgb_run:
        resumed = lgb.train(
            {**LGB_QUIET, "learning_rate": 0.5},
            lgb.Dataset(X, y),
            200,
            valid_sets=[lgb.Dataset(Xv, yv)],
            init_model=first_lgb,
            callbacks=[lgb.early_stopping(3, verbose=False), lgb.record_evaluation(seen)],
        )
    losses = seen["valid_0"]["binary_logloss"]
    run = ferry.get_run(lgb_run.info.run_id)
    assert run.data.metrics["best_iteration"] == resumed.best_iteration > 20
    assert run.data.metrics["stopped_iteration"] == 20 + len(losses)
    history = _history(auto, run, "valid_0-binary_logloss")
    assert [s for s, _ in history] == list(range(20, 20 + len(losses) + 1))
    assert history[-1][1] == pytest.approx(losses[resumed.best_iteration - 1 - 20])


@pytest.mark.parametrize("kind", ["array", "frame"])
def test_lightgbm_frees_the_raw_training_data_and_the_model_keeps_its_first_rows(
    auto: ferry.FerryClient, kind: str
) -> None:
    X, y, _, _ = _data()
    data = X.to_numpy().copy() if kind == "array" else X.copy()
    first_rows = data[:5].copy() if kind == "array" else data.iloc[:5].to_numpy()
    raw = weakref.ref(data)
    train = lgb.Dataset(data, y, free_raw_data=True)
    del data
    alive: list[bool] = []

    def check(env: Any) -> None:
        gc.collect()
        alive.append(raw() is not None)

    lgb.train(LGB_QUIET, train, 3, callbacks=[check])
    assert alive == [False] * 3  # freed once LightGBM built its Dataset, as without autolog
    model = ferry.load_model(f"runs:/{_only_run().info.run_id}/model")
    example = pd.DataFrame(model.metadata.input_example)
    np.testing.assert_allclose(example.to_numpy(dtype=float), first_rows)


def test_lightgbm_train_logs_params_each_rounds_metrics_early_stopping_and_importances(
    auto: ferry.FerryClient, tmp_path: Path
) -> None:
    X, y, Xv, yv = _data()
    train = lgb.Dataset(X, y)
    seen: dict[str, Any] = {}
    booster = lgb.train(
        {**LGB_QUIET, "learning_rate": 0.5, "num_leaves": 31},
        train,
        num_boost_round=300,
        valid_sets=[lgb.Dataset(Xv, yv, reference=train)],
        callbacks=[lgb.early_stopping(3, verbose=False), lgb.record_evaluation(seen)],
    )
    run = _only_run()
    assert run.data.tags["ferryml.autolog"] == "lightgbm"
    assert run.data.params["learning_rate"] == "0.5"
    assert run.data.params["num_boost_round"] == "300"
    losses = seen["valid_0"]["binary_logloss"]
    assert len(losses) < 300  # it did stop early
    history = _history(auto, run, "valid_0-binary_logloss")
    assert [s for s, _ in history] == list(range(len(losses) + 1))
    np.testing.assert_allclose([v for _, v in history[:-1]], losses)
    assert run.data.metrics["best_iteration"] == booster.best_iteration  # counted from 1
    assert run.data.metrics["stopped_iteration"] == len(losses)
    assert history[-1][1] == pytest.approx(losses[booster.best_iteration - 1])
    split = booster.feature_importance(importance_type="split").tolist()
    assert _artifact(auto, run, "feature_importance_split.json", tmp_path) == dict(
        zip(X.columns, split, strict=True)
    )
    assert set(_artifact(auto, run, "feature_importance_gain.json", tmp_path)) == set(X.columns)
    model = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert model.signature is not None and model.signature.columns == list(X.columns)
    np.testing.assert_allclose(model.predict(Xv), booster.predict(Xv))


def test_an_xgbclassifier_fit_is_one_run_with_the_wrapper_and_each_rounds_metrics(
    auto: ferry.FerryClient, tmp_path: Path
) -> None:
    X, y, Xv, yv = _data()
    clf = xgb.XGBClassifier(n_estimators=15, max_depth=2, early_stopping_rounds=50)
    clf.fit(X, y, eval_set=[(X, y), (Xv, yv)], verbose=False)
    run = _only_run()  # the train inside the fit made no run of its own
    assert run.data.tags["ferryml.autolog"] == "xgboost"
    assert run.data.params["n_estimators"] == "15" and run.data.params["max_depth"] == "2"
    assert "num_boost_round" not in run.data.params  # the fit's params, not train's
    for key in ("validation_0-logloss", "validation_1-logloss"):
        assert [s for s, _ in _history(auto, run, key)] == list(range(16))  # 15 rounds + the best
    np.testing.assert_allclose(
        [v for _, v in _history(auto, run, "validation_1-logloss")][:15],
        clf.evals_result()["validation_1"]["logloss"],
    )
    assert run.data.metrics["best_iteration"] == clf.best_iteration
    assert "training_accuracy_score" in run.data.metrics  # the scikit-learn part too
    weights = clf.get_booster().get_score(importance_type="weight")
    assert _artifact(auto, run, "feature_importance_weight.json", tmp_path) == weights
    model = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(model.raw, xgb.XGBClassifier)  # the wrapper, not its booster
    np.testing.assert_array_equal(model.predict_proba(Xv), clf.predict_proba(Xv))


def test_an_lgbmclassifier_fit_is_one_run_with_each_rounds_metrics_and_early_stopping(
    auto: ferry.FerryClient,
) -> None:
    X, y, Xv, yv = _data()
    clf = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.5, verbose=-1)
    clf.fit(X, y, eval_X=(Xv,), eval_y=(yv,), callbacks=[lgb.early_stopping(3, verbose=False)])
    run = _only_run()
    assert run.data.tags["ferryml.autolog"] == "lightgbm"
    assert run.data.params["n_estimators"] == "200"
    losses = clf.evals_result_["valid_0"]["binary_logloss"]
    history = _history(auto, run, "valid_0-binary_logloss")
    assert len(history) == len(losses) + 1 and len(losses) < 200
    assert run.data.metrics["best_iteration"] == clf.best_iteration_
    model = ferry.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(model.predict_proba(Xv), clf.predict_proba(Xv))


def test_inside_an_active_run_both_log_there_and_leave_it_running(auto: ferry.FerryClient) -> None:
    X, y, Xv, yv = _data()
    with ferry.start_run() as active:
        xgb.train({"max_depth": 2}, xgb.DMatrix(X, y), 5, evals=[(xgb.DMatrix(Xv, yv), "v")])
        lgb.train(LGB_QUIET, lgb.Dataset(X, y), 5, valid_sets=[lgb.Dataset(Xv, yv)])
        assert ferry.active_run() is active
        assert ferry.get_run(active.run_id).info.status is RunStatus.RUNNING
    run = _only_run()
    assert run.info.run_id == active.run_id
    assert len(_history(auto, run, "v-rmse")) == 5
    assert len(_history(auto, run, "valid_0-binary_logloss")) == 5


def test_a_search_over_a_wrapper_logs_its_candidates_nothing(auto: ferry.FerryClient) -> None:
    X, y, _, _ = _data()
    model = xgb.XGBClassifier(n_estimators=5)
    GridSearchCV(model, {"max_depth": [2, 3]}, cv=2).fit(X, y, eval_set=[(X, y)], verbose=False)
    run = _only_run()  # four candidate fits and the refit: their trains made no runs
    assert "best_cv_score" in run.data.metrics
    assert "validation_0-logloss" not in run.data.metrics


def test_a_pipeline_ending_in_a_wrapper_logs_its_rounds(auto: ferry.FerryClient) -> None:
    X, y, _, _ = _data()
    make_pipeline(StandardScaler(), lgb.LGBMClassifier(n_estimators=6, verbose=-1)).fit(
        X, y, lgbmclassifier__eval_X=(X.to_numpy(),), lgbmclassifier__eval_y=(y,)
    )
    run = _only_run()
    assert len(_history(auto, run, "valid_0-binary_logloss")) == 6


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not log a fit" in r.getMessage()]


def test_a_logging_failure_leaves_the_trainings_result_intact(
    auto: ferry.FerryClient, caplog: pytest.LogCaptureFixture
) -> None:
    X, y, Xv, yv = _data()
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": 0}
    with ferry.start_run() as active:
        ferry.log_param("max_depth", "other")  # autolog's param conflicts with it
        booster = xgb.train(params, xgb.DMatrix(X, y), 8, evals=[(xgb.DMatrix(Xv, yv), "v")])
    assert "Conflict" in _failures(caplog)[0]
    ferry.autolog(disable=True)
    plain = xgb.train(params, xgb.DMatrix(X, y), 8)
    np.testing.assert_array_equal(booster.predict(xgb.DMatrix(Xv)), plain.predict(xgb.DMatrix(Xv)))
    run = ferry.get_run(active.run_id)
    assert run.data.params["max_depth"] == "other"
    assert len(_history(auto, run, "v-logloss")) == 8  # what could be logged was


def test_a_model_that_cannot_be_saved_still_fits_and_logs_its_metrics(
    auto: ferry.FerryClient, caplog: pytest.LogCaptureFixture
) -> None:
    def logistic(y_true: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-raw))
        return p - y_true, p * (1.0 - p)

    X, y, Xv, yv = _data()
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    clf = lgb.LGBMClassifier(n_estimators=5, objective=logistic, verbose=-1)
    clf.fit(X, y, eval_X=(Xv,), eval_y=(yv,))  # ferryml saves no custom-objective classifier
    assert clf.booster_.num_trees() == 5
    assert _failures(caplog)
    run = _only_run()
    assert run.info.status is RunStatus.FINISHED
    assert [a.path for a in auto.list_artifacts(run.info.run_id, "model")] == []
    assert len(_history(auto, run, "valid_0-binary_logloss")) == 5


def test_a_failing_train_leaves_a_failed_run_and_raises(auto: ferry.FerryClient) -> None:
    X, y, _, _ = _data()
    with pytest.raises(xgb.core.XGBoostError, match="objective"):
        xgb.train({"objective": "no:such"}, xgb.DMatrix(X, y), 3)
    run = _only_run()
    assert run.info.status is RunStatus.FAILED
    assert run.data.params["objective"] == "no:such"  # logged before the training


def test_disable_restores_every_original_train(auto: ferry.FerryClient) -> None:
    ferry.autolog(disable=True)
    originals = [xgb.train, xgb.sklearn.train, lgb.train, lgb.sklearn.train]
    assert originals == [xgb.training.train, xgb.training.train, lgb.engine.train] * 1 + [
        lgb.engine.train
    ]
    ferry.autolog()
    patched = [xgb.train, xgb.sklearn.train, xgb.training.train, lgb.train, lgb.sklearn.train]
    assert not set(patched) & set(originals)
    ferry.autolog(disable=True)
    assert [xgb.train, xgb.sklearn.train, lgb.train, lgb.sklearn.train] == originals
    X, y, _, _ = _data()
    xgb.train({}, xgb.DMatrix(X, y), 2)
    lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, y)
    assert list(ferry.search_runs()) == []


def test_disable_leaves_a_train_another_autolog_put_around_ferrymls(
    auto: ferry.FerryClient,
) -> None:
    ferrys = xgb.train

    @functools.wraps(ferrys)  # as MLflow's autolog patches: it copies ferryml's marker too
    def theirs(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return ferrys(*args, **kwargs)

    calls: list[int] = []
    xgb.train = theirs
    try:
        ferry.autolog(disable=True)
        assert xgb.train is theirs
        X, y, _, _ = _data()
        xgb.train({"max_depth": 2}, xgb.DMatrix(X, y), 2)
        assert calls == [1] and list(ferry.search_runs()) == []  # theirs, ferryml's off
    finally:
        xgb.train = xgb.training.train


UNDER_ANOTHER_HOOK = """
import importlib.util, sys
import ferryml as ferry

class Chained:  # the loader MLflow's import hooks return: the legacy load_module alone
    def __init__(self, loader):
        self.loader = loader
    def load_module(self, fullname):
        frame, around = sys._getframe(1), 0  # ferryml's loaders running around this one
        while frame is not None:
            around += frame.f_globals["__name__"].startswith("ferryml")
            frame = frame.f_back
        module = self.loader.load_module(fullname)
        inside = type(self.loader).__module__.startswith("ferryml")
        loaded.append(f"{fullname}:{around}:{inside:d}")
        return module

class Finder:  # MLflow's: asks every finder again for the module from inside find_spec
    in_progress = set()
    def find_spec(self, name, path, target=None):
        if name not in ("xgboost", "lightgbm") or name in self.in_progress:
            return None
        self.in_progress.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.in_progress.discard(name)
        spec.loader = Chained(spec.loader)
        return spec

loaded = []
if sys.argv[1] == "first":
    sys.meta_path.insert(0, Finder())
    ferry.autolog()
else:
    ferry.autolog()
    sys.meta_path.insert(0, Finder())
import numpy as np
import lightgbm as lgb
import xgboost as xgb

print(" ".join(loaded))
assert xgb.__spec__.submodule_search_locations and lgb.__spec__.submodule_search_locations
d = xgb.DMatrix(np.arange(20.0).reshape(10, 2), np.arange(10) % 2)
xgb.train({"objective": "binary:logistic"}, d, 2, evals=[(d, "t")], verbose_eval=False)
print(len(ferry.FerryClient().get_metric_history(ferry.search_runs()[0].info.run_id, "t-logloss")))
print(hasattr(lgb.train, "_ferryml_autolog_original"))
"""


def _python(tmp_path: Path, script: str, *args: str) -> list[str]:
    """What ``script`` prints, run in a fresh interpreter."""
    env = {**os.environ, "FERRY_HOME": str(tmp_path / ".ferry")}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("order", ["first", "after"])
def test_both_libraries_import_and_are_patched_under_another_import_hook(
    tmp_path: Path, order: str
) -> None:
    """MLflow's autolog, on with ferryml's in either order, loads the libraries through
    a chained loader calling the legacy ``load_module``."""
    # each import seen once by the other hook, its loader around ferryml's and ferryml's
    # around none (patched before the other hook's code runs); ferryml logged each round
    loaded = ["lightgbm:0:1", "xgboost:0:1"]
    assert _python(tmp_path, UNDER_ANOTHER_HOOK, order) == [*loaded, "2", "True"]


IMPORT_LATER = """
import sys
import ferryml as ferry

ferry.autolog()
assert "xgboost" not in sys.modules and "lightgbm" not in sys.modules, "imported by autolog"
import numpy as np
import xgboost as xgb

assert type(xgb.__spec__.loader).__module__ != "ferryml.tracking._autolog_boosting"
rng = np.random.default_rng(0)
X, y = rng.normal(size=(100, 3)), rng.integers(0, 2, 100)
d = xgb.DMatrix(X, y)
xgb.train({"objective": "binary:logistic"}, d, 3, evals=[(d, "t")], verbose_eval=False)
xgb.XGBClassifier(n_estimators=4).fit(X, y, eval_set=[(X, y)], verbose=False)  # wrapped later
wrapper, native = ferry.search_runs()
history = ferry.FerryClient().get_metric_history
print(len(history(native.info.run_id, "t-logloss")))
print(len(history(wrapper.info.run_id, "validation_0-logloss")))
ferry.autolog(disable=True)
print(sum(type(f).__module__.startswith("ferryml") for f in sys.meta_path))
"""


def test_autolog_imports_neither_library_and_patches_one_imported_later(tmp_path: Path) -> None:
    # each round logged; the import hook gone
    assert _python(tmp_path, IMPORT_LATER) == ["3", "4", "0"]
