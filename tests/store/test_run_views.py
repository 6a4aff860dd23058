"""A long metric history reduced in the database keeps what a chart must show: its ends,
every bucket's highest and lowest point at the step it was logged, and its total; short
histories come back whole. On SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from ferryml.errors import NotFound
from ferryml.store.sql import SqlStore
from ferryml.store.sql_views import SqlRunViews

STEPS = 20_000
PEAK, DIP, LONELY_NAN, INF = 13_337, 17_771, 5_000, 9_000


@pytest.fixture
def views(store_url: str) -> Iterator[tuple[SqlRunViews, str]]:
    store = SqlStore(store_url).open()
    try:
        experiment = store.create_experiment("e")
        run_id = store.create_run(experiment, run_name="r", start_time=0, user="u").run_id
        rows = []
        for step in range(STEPS):
            value = math.sin(step / 700)
            value = {PEAK: 40.0, DIP: -40.0, INF: math.inf, LONELY_NAN: 0.0}.get(step, value)
            rows.append((run_id, "loss", step, 1_000 + 2 * step, value, step == LONELY_NAN))
        rows.append((run_id, "loss", PEAK, 1_000 + 2 * PEAK + 1, 0.5, False))  # same step again
        rows += [(run_id, "short", s, s, float(s), False) for s in range(10)]
        store.write_metric_rows(run_id, rows)
        yield SqlRunViews(store), run_id
    finally:
        store.close()


def test_a_long_history_keeps_its_ends_extremes_and_total(
    views: tuple[SqlRunViews, str],
) -> None:
    run_views, run_id = views
    series = run_views.get_metric_series(run_id, "loss", buckets=200)
    assert series.total == STEPS + 1
    assert 200 < len(series.values) <= 4 * 200 + 1  # a few per bucket, not all
    assert series.steps[0] == 0 and series.steps[-1] == STEPS - 1
    assert np.all(np.diff(series.steps) >= 0)
    assert np.isfinite(series.values).all()  # NaN and infinity are never kept
    assert series.values.max() == 40.0 and series.steps[series.values.argmax()] == PEAK
    assert series.values.min() == -40.0 and series.steps[series.values.argmin()] == DIP
    assert series.timestamps[series.values.argmax()] == 1_000 + 2 * PEAK  # the logged point
    # Every bucket's highest and lowest value survive, not only the series' own.
    whole = np.array([math.sin(s / 700) for s in range(STEPS)])
    width = -(-STEPS // 200)
    for start in range(0, STEPS, width * 17):  # a sample of buckets
        part = whole[start : start + width]
        kept = series.values[(series.steps >= start) & (series.steps < start + width)]
        if not {PEAK, DIP, INF, LONELY_NAN} & set(range(start, start + width)):
            assert kept.max() == part.max() and kept.min() == part.min()


def test_a_short_history_comes_back_whole(views: tuple[SqlRunViews, str]) -> None:
    run_views, run_id = views
    series = run_views.get_metric_series(run_id, "short", buckets=200)
    assert series.steps.tolist() == list(range(10)) and series.total == 10
    assert run_views.get_metric_series(run_id, "loss").total == STEPS + 1  # no buckets: all


def test_an_unknown_key_is_empty_and_an_unknown_run_not_found(
    views: tuple[SqlRunViews, str],
) -> None:
    run_views, run_id = views
    empty = run_views.get_metric_series(run_id, "nope", buckets=200)
    assert empty.total == 0 and len(empty.values) == 0
    with pytest.raises(NotFound):
        run_views.get_metric_series("0" * 32, "loss", buckets=200)
