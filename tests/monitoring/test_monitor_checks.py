"""A monitor's model-aware checks on a stream whose relation between features and label
changes in its third hour: concept drift, estimated next to realised performance, and
permutation importance per window."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.monitoring.monitors import MonitorSpec, add_monitor, report, report_html, run_monitor
from ferryml.predictions import record_feedback
from ferryml.serving.predlog import PredictionLog

HOUR = 3600.0
T0 = pd.Timestamp("2024-06-01T00:00:00Z").timestamp()
ROWS = 600  # per hour


def _relation(X: pd.DataFrame, rng: np.random.Generator, changed: bool) -> np.ndarray:
    """Before the change the label follows mostly ``a``; after it, mostly ``b``. Labels are
    drawn with a logistic probability so a logistic model is calibrated before it."""
    score = X["b"] - 0.2 * X["a"] if changed else 2 * X["a"] + 0.3 * X["b"]
    probability = 1 / (1 + np.exp(-3 * score.to_numpy()))
    return (rng.random(len(X)) < probability).astype(int)


@pytest.fixture
def stream(sqlite_settings: Settings) -> Iterator[Settings]:
    ferry.configure(home=sqlite_settings.home)
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    model = LogisticRegression().fit(X, _relation(X, rng, changed=False))
    with ferry.start_run():
        ferry.log_model(model, input_example=X.head(), training_data=X, registered_model_name="m")
    labels = []
    with PredictionLog(sqlite_settings) as log:
        for hour in range(3):
            batch = pd.DataFrame({"a": rng.normal(size=ROWS), "b": rng.normal(size=ROWS)})
            truth = _relation(batch, rng, changed=hour == 2)
            ids = [f"h{hour}-{i}" for i in range(ROWS)]
            for i in range(ROWS):  # one request per row, spread over the hour
                log.record(
                    "d", "primary", "m", 1, [ids[i]], batch.iloc[[i]],
                    model.predict(batch.iloc[[i]]).tolist(), 1.0,
                    time=T0 + hour * HOUR + i * HOUR / ROWS,
                )  # fmt: skip
            labels += list(zip(ids, truth.tolist(), strict=True))
    record_feedback(labels, settings=sqlite_settings)
    yield sqlite_settings
    ferry.configure(home=sqlite_settings.home)


def _spec(**kw: object) -> MonitorSpec:
    fields: dict[str, object] = {
        "name": "watch",
        "deployment": "d",
        "reference": "model:m/1",
        "window": "1h",
        "task": "classification",
        "checks": "drift,performance,concept,estimated,importance",
        "rules": ["concept_drift > 0"],
        "channels": ["log"],
    }
    return MonitorSpec(**{**fields, **kw})  # type: ignore[arg-type]


def test_concept_drift_is_found_where_the_relation_changed(stream: Settings) -> None:
    add_monitor(stream, _spec())
    first, second, third = run_monitor(stream, "watch")
    assert [w.metrics["concept_drift"] for w in (first, second, third)] == [0.0, 0.0, 1.0]
    assert first.metrics["accuracy"] > 0.85 and third.metrics["accuracy"] < 0.65
    assert set(third.drift.columns) == {"a", "b"}
    change = third.details["concept"]
    began = pd.Timestamp(change["began"])
    assert third.start - pd.Timedelta(minutes=6) <= began <= pd.Timestamp(change["at"])
    assert change["error_rate_after"] > change["error_rate_before"] + 0.2
    assert [(a.rule, a.state) for a in third.alerts] == [("concept_drift > 0", "fired")]
    assert [w["concept"]["detected"] for w in report(stream, "watch")["windows"]] == [
        False,
        False,
        True,
    ]


def test_estimated_performance_tracks_the_realised_until_the_concept_changes(
    stream: Settings,
) -> None:
    add_monitor(stream, _spec())
    windows = run_monitor(stream, "watch")
    for window in windows[:2]:
        assert abs(window.metrics["estimated_accuracy"] - window.metrics["accuracy"]) < 0.05
        assert abs(window.metrics["estimated_roc_auc"] - window.metrics["roc_auc"]) < 0.05
    # CBPE trusts the model's confidence, which a change of concept leaves unchanged
    last = windows[2].metrics
    assert last["estimated_accuracy"] - last["accuracy"] > 0.2
    page = report_html(stream, "watch")
    assert "accuracy: realised (blue) vs estimated (orange)" in page
    assert "Concept drift" in page and "Drift score per feature over time" in page


def test_permutation_importance_follows_the_feature_the_label_depends_on(
    stream: Settings,
) -> None:
    add_monitor(stream, _spec())
    windows = run_monitor(stream, "watch")
    before = windows[0].details["importance"]
    assert (before["model"], before["version"], before["metric"]) == ("m", 1, "roc_auc")
    assert before["rows"] == ROWS
    assert before["features"]["a"] > 0.2 > before["features"]["b"]
    assert "Permutation importance per window (drop in roc_auc)" in report_html(stream, "watch")


def test_default_checks_skip_the_model_aware_ones(stream: Settings) -> None:
    add_monitor(stream, _spec(checks=("drift", "performance"), rules=[]))
    window = run_monitor(stream, "watch")[0]
    assert "accuracy" in window.metrics and "drift_share" in window.metrics
    assert not {"concept_drift", "estimated_accuracy"} & set(window.metrics)
    assert window.details == {}


def test_drift_can_be_left_out(stream: Settings) -> None:
    add_monitor(stream, _spec(checks=["performance"], rules=[]))
    window = run_monitor(stream, "watch")[0]
    assert "drift_share" not in window.metrics and window.metrics["accuracy"] > 0.85


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"checks": "drift,shap"}, "Unknown monitor check(s) 'shap'"),
        ({"checks": "concept", "task": None}, "give the monitor a task"),
        ({"checks": "estimated", "task": "regression"}, "needs task 'classification'"),
    ],
)
def test_checks_that_cannot_run_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        _spec(**fields)


def test_a_check_that_cannot_run_is_reported_and_the_window_kept(sqlite_settings: Settings) -> None:
    ferry.configure(home=sqlite_settings.home)
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0)})
    model = LinearRegression().fit(X, X["a"] > 9)
    with ferry.start_run():
        ferry.log_model(model, input_example=X.head(), training_data=X, registered_model_name="r")
    with PredictionLog(sqlite_settings) as log:
        log.record("r", "primary", "r", 1, ["x"], X.head(1), [1], 1.0, time=T0)
    add_monitor(
        sqlite_settings,
        MonitorSpec("est", "r", "model:r/1", window=1, task="classification", checks="estimated"),
    )
    (window,) = run_monitor(sqlite_settings, "est")  # the failing check does not stop it
    assert "model r/1 has no predict_proba" in window.details["estimated"]["error"]
    assert "estimated_accuracy" not in window.metrics and window.metrics["rows"] == 1.0
