"""A monitor's windows, read from the prediction log a day at a time: a run after weeks
of serving holds a day of rows in memory (and the window before), not all of them.

Time windows that divide a day start on the day's midnight whatever row comes first
(pandas' bins), so the days split into the same windows as the whole log would; other
lengths are anchored on the first row's day and are read whole. Windows of a count of
rows carry the rows of an unfinished window over to the next day.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from ferryml.config import Settings
from ferryml.monitoring.performance import Window, windows

__all__ = ["load_window", "read_windows"]

_DAY = pd.Timedelta(days=1)


def read_windows(
    settings: Settings,
    deployment: str,
    since: pd.Timestamp | None,
    until: pd.Timestamp,
    *,
    by: str | None,
    count: int | None,
) -> Iterator[Window]:
    """The windows of ``deployment``'s predictions with ``since <= time < until``, oldest
    first, as ``windows(load_window(...), by=by, count=count)`` gives them, though without
    some of the empty ones.

    Raises:
        NotFound: the deployment never logged a prediction.
    """
    if by is not None and _DAY % pd.Timedelta(by):
        yield from windows(load_window(settings, deployment, since, until), by=by, count=count)
        return
    carry: pd.DataFrame | None = None
    for start, end in _days(settings, deployment, since, until):
        frame = load_window(settings, deployment, start, end)
        if count is None:
            yield from windows(frame, by=by)
            continue
        if carry is not None:
            frame = pd.concat([carry, frame], ignore_index=True)
        full = len(frame) // count * count
        yield from windows(frame.iloc[:full], count=count)
        carry = frame.iloc[full:]
    if carry is not None and len(carry):
        yield from windows(carry, count=count)


def load_window(
    settings: Settings, deployment: str, since: pd.Timestamp | None, until: pd.Timestamp | None
) -> pd.DataFrame:
    """The predictions with ``since <= time < until``, with their labels."""
    from ferryml.serving import predictions  # the serving package loads on use

    return predictions.load(
        deployment,
        since=None if since is None else since.to_pydatetime(),
        until=None if until is None else until.to_pydatetime(),
        with_feedback=True,
        settings=settings,
    )


def _days(
    settings: Settings, deployment: str, since: pd.Timestamp | None, until: pd.Timestamp
) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[since, until)`` cut at midnights, leaving out the days no stored part covers.

    Raises:
        NotFound: the deployment never logged a prediction.
    """
    from ferryml.serving import predictions

    spans = predictions.logged_spans(
        deployment,
        since=None if since is None else since.to_pydatetime(),
        until=until.to_pydatetime(),
        settings=settings,
    )
    if not spans:
        load_window(settings, deployment, since, until)  # NotFound for an unknown deployment
        return
    first = min(low for low, _ in spans)
    day = (first if since is None else max(since, first)).floor("D")
    last = min(until, max(high for _, high in spans) + pd.Timedelta(milliseconds=1))
    while day < last:
        start = day if since is None else max(day, since)
        end = min(day + _DAY, until)
        if any(low < end and high >= start for low, high in spans):
            yield start, end
        day += _DAY
