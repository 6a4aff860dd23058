"""The monitor's HTML page: charts with axes and values, windows numbered and timed to
the second, and the predictions' drift beside the features'."""

from __future__ import annotations

import re

from ferryml.monitoring._monitor_html import render_monitor
from ferryml.store.sql_monitors import MonitorResult

START = 1_764_000_000_000  # 2025-11-24 16:00:00 UTC


def _window(i: int, share: float, prediction_moved: bool) -> MonitorResult:
    column = {"statistic": 0.05 + i / 100, "drift_detected": False}
    prediction = {
        "statistic": 0.6 if prediction_moved else 0.01,
        "drift_detected": prediction_moved,
    }
    return MonitorResult(
        monitor="m",
        window_start=START + i * 61_000,
        window_end=START + (i + 1) * 61_000,
        metrics={"rows": 100.0, "drift_share": share, "prediction_drift": float(prediction_moved)},
        drift={"columns": {"age": column}, "prediction": {"label": prediction}},
        created=START,
    )


def _page() -> str:
    results = [_window(0, 0.0, False), _window(1, 0.25, False), _window(2, 0.5, True)]
    return render_monitor("m", {"deployment": "d", "window": "1m"}, results, None)


def test_each_chart_has_a_value_axis_a_window_axis_and_its_last_value() -> None:
    chart = re.search(r"<figcaption>drift_share</figcaption>(<svg.*?</svg>)", _page())
    assert chart is not None
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", chart[1])
    assert texts == ["0.5", "0", "#1", "#3", "0.5"]  # highest, lowest, windows, last value
    assert "<title>window #2 (2025-11-24 16:01:01): 0.25</title>" in chart[1]


def test_windows_are_numbered_and_timed_to_the_second() -> None:
    page = _page()
    assert "<tr><td>3</td><td>2025-11-24 16:02:02</td><td>2025-11-24 16:03:03</td>" in page
    assert "<th title='2025-11-24 16:02:02 to 2025-11-24 16:03:03'>#3</th>" in page


def test_a_prediction_drift_row_marks_the_windows_where_predictions_moved() -> None:
    grid = re.search(r"Drift score per feature over time</h2>(<table.*?</table>)", _page())
    assert grid is not None
    rows = re.findall(r"<tr><th>([^<]*)</th>(.*?)</tr>", grid[1])
    assert [name for name, _ in rows] == ["window", "age", "prediction"]
    assert rows[2][1] == "<td>0.01</td><td>0.01</td><td class=drifted>0.6</td>"
