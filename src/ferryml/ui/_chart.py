"""Small line charts drawn as SVG on the server, for series of tens to a few thousand
points (a monitor's windows): no script, and the page shows the same picture to every
reader and to the browser tests."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Chart", "Series", "line_chart"]

COLOURS = ("#0b5cad", "#b3261e", "#1a7f37", "#8a5a00", "#6f42c1", "#1b7c83", "#cf222e", "#57606a")
W, H, LEFT, RIGHT, TOP, BOTTOM = 560, 180, 48, 12, 10, 22
DOTS = 200


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: str  # the polyline's "x,y x,y ..."
    dots: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    series: tuple[Series, ...]
    marks: tuple[float, ...]  # x positions of vertical marks (e.g. concept drift)
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]  # position, UTC time
    empty: bool


def line_chart(
    title: str,
    xs: Sequence[int],
    values: Mapping[str, Sequence[float | None]],
    *,
    marks: Sequence[int] = (),
) -> Chart:
    """One line per name in ``values`` over ``xs`` (ms since the epoch); None and
    non-finite values leave gaps in the dots. ``marks`` are x values to flag."""
    finite = [v for vs in values.values() for v in vs if v is not None and math.isfinite(v)]
    if not xs or not finite:
        return Chart(title, W, H, (), (), (), (), True)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(finite)), max(finite)
    if y1 == y0:
        y1 = y0 + 1.0

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * (H - TOP - BOTTOM)

    series = []
    for i, (name, vs) in enumerate(values.items()):
        kept = [
            (round(px(x), 1), round(py(v), 1))
            for x, v in zip(xs, vs, strict=True)
            if v is not None and math.isfinite(v)
        ]
        points = " ".join(f"{x},{y}" for x, y in kept)
        dots = tuple(kept) if len(kept) <= DOTS else ()  # past that a line reads better
        series.append(Series(name, COLOURS[i % len(COLOURS)], points, dots))
    y_ticks = tuple((round(py(y), 1), f"{y:.3g}") for y in (y0, (y0 + y1) / 2, y1))
    x_ticks = tuple((round(px(x), 1), _utc(x)) for x in sorted({x0, x1}))
    return Chart(
        title,
        W,
        H,
        tuple(series),
        tuple(round(px(m), 1) for m in marks),
        y_ticks,
        x_ticks,
        False,
    )


def _utc(ms: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
