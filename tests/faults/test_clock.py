"""The wall clock jumps backwards and forwards (an NTP step, a VM resumed): values logged
across the jump keep their order by step (also through a team server), predictions stamped
out of order are all kept and joined to their labels, and a monitor's recheck checks the
rows stamped into windows it had checked. The jump is made by shifting ``time.time`` in
this process; the machine's own clock is shared and is never touched."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ferryml import predictions
from ferryml.config import Settings
from ferryml.serving.predlog import PredictionLog, new_prediction_id
from ferryml.tracking.client import FerryClient

HOUR = 3600.0


@pytest.fixture
def jump(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """``jump(seconds)`` moves the wall clock this process sees by ``seconds`` from now on."""
    real, real_ns = time.time, time.time_ns
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + int(offset[0] * 1e9))

    def move(seconds: float) -> None:
        offset[0] += seconds

    return move


@pytest.fixture(params=["sqlite", "team server"])
def where(
    request: pytest.FixtureRequest, sqlite_settings: Settings, tmp_path: Path, make_store: Any
) -> Iterator[Settings]:
    """A store of the process's own, or a team server whose own clock stays put."""
    if request.param == "sqlite":
        yield sqlite_settings
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from team_world import running_server

    with make_store("sqlite", tmp_path, request) as store_url:
        for server in running_server(store_url, tmp_path):
            url, token = server.url, server.tokens["writer"]
            yield Settings(home=tmp_path / "client", store_url=url, artifacts_url=url, token=token)


def test_metrics_logged_across_clock_jumps_keep_their_order_and_latest_value(
    where: Settings, jump: Callable[[float], None]
) -> None:
    client = FerryClient(where)
    try:
        run_id = client.create_run(client.create_experiment("clock")).info.run_id
        for step in range(30):
            if step in (10, 20):
                jump(-HOUR if step == 10 else 3 * HOUR)  # back an hour, then ahead two
            client.log_metric(run_id, "m", float(step), step=step)
        client.set_terminated(run_id)
        history = client.get_metric_history(run_id, "m")
        run = client.get_run(run_id)
    finally:
        client.close()
    assert [m.value for m in history] == [float(s) for s in range(30)]
    assert history[10].timestamp < history[9].timestamp  # stamped by the clock, as given
    assert run.data.metrics["m"] == 29.0  # the latest is the last step, not the latest stamp


def test_predictions_stamped_out_of_order_are_all_kept_and_get_their_labels(
    sqlite_settings: Settings, jump: Callable[[float], None]
) -> None:
    ids: list[str] = []
    with PredictionLog(sqlite_settings) as log:
        for shift in (0.0, -HOUR, 3 * HOUR):  # now, an hour back, two hours ahead
            jump(shift)
            batch = [new_prediction_id() for _ in range(5)]
            features = pd.DataFrame({"x": range(5)})
            log.record("churn", "primary", "churn", 1, batch, features, [1] * 5, 1.0)
            log.flush()
            ids += batch
    assert ids[5] < ids[4]  # ids sort by their clock: the jump put these before the first
    report = predictions.record_feedback([(i, 1) for i in ids], settings=sqlite_settings)
    assert (report.accepted, report.unknown_ids) == (15, [])
    logged = predictions.load("churn", settings=sqlite_settings)
    assert sorted(logged["id"]) == sorted(ids)
    assert logged["label"].tolist() == [1] * 15


def test_rows_stamped_into_checked_windows_are_checked_by_a_recheck(
    sqlite_settings: Settings,
) -> None:
    from ferryml.monitoring.monitors import MonitorSpec, add_monitor, report, run_monitor

    start, rows = 1_717_200_000.0, 40
    base = pd.DataFrame({"x": [float(i % 10) for i in range(rows)]})

    def log(hour: int, shift: float, tag: str) -> None:
        with PredictionLog(sqlite_settings) as predictions_log:
            ids = [f"{tag}{i}" for i in range(rows)]
            predictions_log.record("d", "primary", "m", 1, ids, base + shift, [0] * rows, 1.0,
                                   time=start + hour * HOUR + 60)  # fmt: skip

    for hour in range(3):
        log(hour, 0.0, f"h{hour}-")
    reference = "window:2024-06-01T00:00/2024-06-01T01:00"
    add_monitor(sqlite_settings, MonitorSpec("watch", "d", reference, "1h"))
    assert len(run_monitor(sqlite_settings, "watch")) == 3
    log(1, 50.0, "late-")  # stamped by a clock stepped back into the second window
    assert run_monitor(sqlite_settings, "watch") == []  # windows follow prediction time
    again = run_monitor(sqlite_settings, "watch", recheck=pd.Timestamp("2024-06-01T01:00Z"))
    assert [r.metrics["rows"] for r in again] == [2.0 * rows, rows]  # the late rows, checked
    assert again[0].drift.drifted_columns == ("x",)
    windows = report(sqlite_settings, "watch")["windows"]
    assert len(windows) == 3 and len({w["start"] for w in windows}) == 3  # each once
