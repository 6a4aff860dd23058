"""Monitors end to end: a prediction log checked window by window against a model's
training-data profile, with results stored once and alerts sent to the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.monitoring.monitors import (
    MonitorSpec,
    add_monitor,
    list_monitors,
    report,
    report_html,
    run_monitor,
)
from ferryml.serving.deployments import Deployments
from ferryml.serving.predlog import PredictionLog

HOUR = 3600.0
T0 = pd.Timestamp("2024-06-01T00:00:00Z").timestamp()


def _features(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(shift, 1.0, n), "b": rng.normal(shift, 1.0, n)})


@pytest.fixture
def home(sqlite_settings: Settings) -> Iterator[Settings]:
    """A champion model with a training profile, and two hours of predictions: rows of
    the training data, then the same rows shifted."""
    ferry.configure(home=sqlite_settings.home)
    X = _features(1000, 0.0, 1)
    y = (X["a"] + X["b"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with ferry.start_run():
        ferry.log_model(model, input_example=X.head(), training_data=X, registered_model_name="m")
    ferry.set_registered_model_alias("m", "champion", 1)
    with PredictionLog(sqlite_settings) as log:
        for hour, shift in enumerate((0.0, 3.0)):
            for i in range(10):
                batch = X.iloc[i * 30 : (i + 1) * 30] + shift  # hour 0: the training data
                ids = [f"h{hour}-{i}-{j}" for j in range(len(batch))]
                outputs = model.predict(batch).tolist()
                log.record(
                    "d",
                    "primary",
                    "m",
                    1,
                    ids,
                    batch,
                    outputs,
                    1.0,
                    time=T0 + hour * HOUR + i * 300,
                )
    yield sqlite_settings
    ferry.configure(home=sqlite_settings.home)


def _spec(**kw: object) -> MonitorSpec:
    fields: dict[str, object] = {
        "name": "watch",
        "deployment": "d",
        "reference": "model:m@champion",
        "window": "1h",
        "rules": ["drift_share > 0.3"],
        "channels": ["log"],
    }
    return MonitorSpec(**{**fields, **kw})  # type: ignore[arg-type]


def test_a_monitor_stores_each_window_once_and_alerts_on_drift(
    home: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    add_monitor(home, _spec())
    with caplog.at_level(logging.WARNING, logger="ferryml.alerts"):
        results = run_monitor(home, "watch")
    assert [r.start for r in results] == [
        pd.Timestamp("2024-06-01T00:00Z"),
        pd.Timestamp("2024-06-01T01:00Z"),
    ]
    first, second = results
    assert first.metrics["rows"] == 300 and not first.drift.dataset_drift
    assert second.drift.drifted_columns == ("a", "b")
    assert second.metrics["drift_share"] == 1.0 and second.metrics["n_drifted"] == 2
    assert first.alerts == ()
    assert [(a.rule, a.state) for a in second.alerts] == [("drift_share > 0.3", "fired")]
    assert any("drift_share" in r.getMessage() for r in caplog.records)

    assert run_monitor(home, "watch") == []

    data = report(home, "watch")
    assert [w["start"] for w in data["windows"]] == [
        "2024-06-01T00:00:00+00:00",
        "2024-06-01T01:00:00+00:00",
    ]
    assert data["windows"][1]["drifted_columns"] == ["a", "b"]
    page = report_html(home, "watch")
    assert "<table><tr><th>column</th>" in page and "monitor-windows" in page
    assert "<svg" in page


def test_a_window_stored_by_a_pass_cut_short_before_its_alerts_is_counted_by_the_next(
    home: Settings,
) -> None:
    from ferryml.monitoring.alerts import AlertManager
    from ferryml.monitoring.monitors import _store

    add_monitor(home, _spec(rules=[]))
    done = run_monitor(home, "watch")  # both windows stored, no rule to count them
    spec = _spec()
    with _store(home) as store:  # the rule arrives as if the pass had died before counting
        store.remove("watch")
        store.create("watch", spec.to_dict())
        for r in done:
            assert store.add_result(
                "watch", int(r.start.value // 10**6), int(r.end.value // 10**6), r.metrics, {}
            )
    assert run_monitor(home, "watch") == []  # nothing new to check ...
    with AlertManager(home, list(spec.rules)) as manager:
        alerts = manager.store.list_alerts(monitor="watch")
    assert [(a.rule, a.state) for a in alerts] == [("drift_share > 0.3", "fired")]  # ... counted
    assert run_monitor(home, "watch") == []
    with AlertManager(home, list(spec.rules)) as manager:
        assert len(manager.store.list_alerts(monitor="watch")) == 1  # and counted once


def test_windows_that_have_not_ended_wait_for_a_later_run(home: Settings) -> None:
    add_monitor(home, _spec(rules=[]))
    early = run_monitor(home, "watch", now=pd.Timestamp("2024-06-01T01:30Z"))
    assert [r.start for r in early] == [pd.Timestamp("2024-06-01T00:00Z")]
    later = run_monitor(home, "watch")
    assert [r.start for r in later] == [pd.Timestamp("2024-06-01T01:00Z")]


def test_a_window_of_past_predictions_can_be_the_reference(home: Settings) -> None:
    add_monitor(home, _spec(reference="window:2024-06-01T00:00/2024-06-01T01:00", window=300))
    results = run_monitor(home, "watch")
    assert [r.metrics["rows"] for r in results] == [300.0, 300.0]
    assert results[0].drift.prediction_drift is False
    assert results[1].metrics["drift_share"] == 1.0


def test_monitors_are_listed_and_names_are_unique(home: Settings) -> None:
    add_monitor(home, _spec())
    with pytest.raises(AlreadyExists, match="Monitor 'watch' exists already"):
        add_monitor(home, _spec())
    assert [m.name for m in list_monitors(home)] == ["watch"]


def test_a_reference_that_does_not_resolve_is_refused(home: Settings) -> None:
    with pytest.raises(NotFound):
        add_monitor(home, _spec(reference="model:m@staging"))
    with pytest.raises(InvalidArgument, match="is not understood"):
        _spec(reference="champion")
    with pytest.raises(InvalidArgument, match="not a duration"):
        _spec(window="hourly")
    assert list_monitors(home) == []


def test_an_unknown_monitor_is_not_found(home: Settings) -> None:
    with pytest.raises(NotFound, match="Monitor 'nope' not found"):
        run_monitor(home, "nope")


def test_the_cli_adds_runs_and_reports_a_monitor(home: Settings, tmp_path: Path, cli: Any) -> None:
    def ferry_(*args: str) -> tuple[int, str]:
        code, out, _ = cli("--home", str(home.home), "monitor", *args)
        return code, out

    added = ferry_(
        "add",
        "watch",
        "--deployment",
        "d",
        "--reference",
        "model:m@champion",
        "--window",
        "1h",
        "--rule",
        "drift_share > 0.3",
        "--channel",
        "log",
    )
    assert added == (0, "Monitor 'watch' added; run it with `ferry monitor run watch`.\n")
    code, out = ferry_("run", "watch", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    assert ferry_("run", "watch") == (0, "Monitor 'watch': no new complete window.\n")
    code, out = ferry_("report", "watch", "--json")
    assert len(json.loads(out)["windows"]) == 2
    page = tmp_path / "watch.html"
    code, _ = ferry_("report", "watch", "--html", str(page))
    assert code == 0 and "monitor-windows" in page.read_text()
    code, out = ferry_("list", "--json")
    assert [m["name"] for m in json.loads(out)] == ["watch"]


def test_a_removed_monitor_can_be_added_again_with_other_checks(home: Settings, cli: Any) -> None:
    add_monitor(home, _spec())
    run_monitor(home, "watch")
    code, out, _ = cli("--home", str(home.home), "monitor", "remove", "watch")
    assert (code, out) == (0, "Monitor 'watch' removed with its 2 window(s).\n")
    assert list_monitors(home) == []
    add_monitor(home, _spec(checks=["performance"], task="classification"))
    assert [r.metrics.get("drift_share") for r in run_monitor(home, "watch")] == [None, None]
    code, out, err = cli("--home", str(home.home), "monitor", "remove", "nope")
    assert code != 0 and "Monitor 'nope' not found" in out + err and "Traceback" not in out + err


@pytest.fixture
def wine_api(home: Settings) -> Settings:
    """``home`` with a created deployment 'wine-api' of model m."""
    manager = Deployments(home)
    manager.create("wine-api", "m", 1)
    manager.close()
    return home


def test_a_monitor_of_an_unknown_deployment_is_refused_with_the_close_names(
    wine_api: Settings, cli: Any
) -> None:
    home = wine_api
    args = ("--home", str(home.home), "monitor", "add", "typo-watch", "--reference")
    code, out, err = cli(*args, "model:m@champion", "--deployment", "wine-apii")
    assert (code, out) == (1, "")
    assert err == (
        "error: Deployment 'wine-apii' not found. Did you mean 'wine-api'? See `ferry deploy "
        "list`, or serve a registered model with `ferry serve NAME@ALIAS`.\n"
    )
    assert list_monitors(home) == []
    # created, logged predictions (ferry serve m@champion logs under 'd' here), or a model
    # that `ferry serve NAME@ALIAS` would serve under its name: all known
    for name in ("wine-api", "d", "m"):
        add_monitor(home, _spec(name=f"watch-{name}", deployment=name))
    assert [m.deployment for m in list_monitors(home)] == ["d", "m", "wine-api"]


def test_deploy_list_shows_the_implicit_deployments_of_served_models(
    wine_api: Settings, cli: Any
) -> None:
    home = wine_api
    code, out, _ = cli("--home", str(home.home), "deploy", "list", "--json")
    assert (code, json.loads(out)) == (
        0,
        [
            {"name": "d", "implicit": True, "model": "d", "routes": []},
            {
                "name": "wine-api",
                "implicit": False,
                "model": "m",
                "routes": [{"version": 1, "weight": 100.0, "role": "primary"}],
                "policy": {"error_margin": 0.05, "latency_margin": 1.0, "min_requests": 50},
            },
        ],
    )
    code, out, _ = cli("--home", str(home.home), "deploy", "list")
    assert code == 0 and "implicit: ferry serve d@ALIAS" in out and "v1:primary:100" in out
    code, out, err = cli("--home", str(home.home), "deploy", "show", "d")
    assert (code, out) == (1, "")
    assert err == (
        "error: Deployment 'd' is implicit: `ferry serve d@ALIAS` logs under it, and it has no "
        "routes to show or change. Create it with `ferry deploy create d --model d --version "
        "N`, then serve it with `ferry serve --deployment d`.\n"
    )
