"""A monitor reads the prediction log a day at a time and finds the same windows as in
the whole log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml.config import Settings
from ferryml.errors import NotFound
from ferryml.monitoring import _window_reader
from ferryml.monitoring._window_reader import load_window, read_windows
from ferryml.monitoring.performance import windows
from ferryml.serving.predlog import PredictionLog

DAY0 = pd.Timestamp("2024-06-01T00:00:00Z")
END = DAY0 + pd.Timedelta(days=5)
# Batches every 50 minutes on days 0, 1 and 3 (none on day 2), 13 rows each, so hours,
# days and counts of rows all cut batches and midnights in different places.
TIMES = [DAY0 + pd.Timedelta(days=day, minutes=50 * k) for day in (0, 1, 3) for k in range(29)]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A server's log over three days, flushed once a day (read only by the tests)."""
    root = tmp_path_factory.mktemp("reader")
    sqlite_settings = Settings.resolve(home=root / "home", cwd=root, environ={})
    rng = np.random.default_rng(0)
    for day in range(0, len(TIMES), 29):
        with PredictionLog(sqlite_settings) as log:
            for n, when in enumerate(TIMES[day : day + 29], start=day):
                batch = pd.DataFrame({"a": rng.normal(size=13)})
                ids = [f"p{n}-{j}" for j in range(13)]
                outputs = [0] * 13
                log.record("d", "primary", "m", 1, ids, batch, outputs, 1.0, time=when.timestamp())
    yield sqlite_settings


def _shape(found: Any) -> list[tuple[pd.Timestamp, pd.Timestamp, list[str]]]:
    return [(w.start, w.end, list(w.frame["id"])) for w in found if len(w.frame)]


@pytest.mark.parametrize(
    ("by", "count"),
    [("3600s", None), ("86400s", None), ("21600s", None), ("25200s", None), (None, 40)],
)
@pytest.mark.parametrize("since", [None, DAY0 + pd.Timedelta(hours=30, minutes=10)])
def test_windows_read_by_day_are_the_windows_of_the_whole_log(
    logged: Settings, by: str | None, count: int | None, since: pd.Timestamp | None
) -> None:
    whole = windows(load_window(logged, "d", since, END), by=by, count=count)
    assert _shape(read_windows(logged, "d", since, END, by=by, count=count)) == _shape(whole)
    assert sum(len(w.frame) for w in whole) == 13 * sum(t >= (since or DAY0) for t in TIMES)


def test_no_read_spans_more_than_a_day_and_days_without_rows_are_not_read(
    logged: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: list[tuple[Any, Any]] = []

    def recorded(settings: Settings, deployment: str, since: Any, until: Any) -> pd.DataFrame:
        spans.append((since, until))
        return load_window(settings, deployment, since, until)

    monkeypatch.setattr(_window_reader, "load_window", recorded)
    found = list(read_windows(logged, "d", None, END, by=None, count=40))
    assert sum(len(w.frame) for w in found) == 13 * len(TIMES)
    days = [DAY0 + pd.Timedelta(days=d) for d in (0, 1, 3)]
    assert spans == [(day, day + pd.Timedelta(days=1)) for day in days]


def test_an_unknown_deployment_is_not_found(logged: Settings) -> None:
    with pytest.raises(NotFound, match="No predictions logged for deployment 'other'"):
        list(read_windows(logged, "other", None, END, by="3600s", count=None))
