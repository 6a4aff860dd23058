"""Fewer points that keep a series' shape, for drawing long metric histories."""

from __future__ import annotations

import numpy as np

__all__ = ["lttb"]


def lttb(x: np.ndarray, y: np.ndarray, points: int) -> np.ndarray:
    """The indices of at most ``points`` points of the series (``x`` ascending) chosen by
    Largest-Triangle-Three-Buckets (Steinarsson, 2013): the first and last points, and
    from each bucket between them the point making the largest triangle with the point
    kept before it and the mean of the next bucket. Peaks and dips survive, unlike with
    every n-th point. Non-finite ``y`` values are never chosen.

    Raises:
        ValueError: ``points`` is under 3 or the arrays differ in length.
    """
    if points < 3:
        raise ValueError(f"points must be at least 3; got {points}.")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} values and y {len(y)}.")
    finite = np.flatnonzero(np.isfinite(y))
    if len(finite) <= points:
        return finite
    xs, ys = x[finite].astype(np.float64), y[finite]
    n = len(xs)
    # Bucket edges over the points between the first and the last.
    edges = np.linspace(1, n - 1, points - 1).astype(np.int64)
    chosen = np.empty(points, dtype=np.int64)
    chosen[0], chosen[-1] = 0, n - 1
    a = 0
    for i in range(points - 2):
        lo, hi = edges[i], edges[i + 1]
        nxt_lo, nxt_hi = hi, edges[i + 2] if i + 2 < len(edges) else n
        if nxt_hi <= nxt_lo:
            nxt_lo, nxt_hi = n - 1, n
        cx, cy = xs[nxt_lo:nxt_hi].mean(), ys[nxt_lo:nxt_hi].mean()
        bx, by = xs[lo:hi], ys[lo:hi]
        area = np.abs((xs[a] - cx) * (by - ys[a]) - (xs[a] - bx) * (cy - ys[a]))
        a = lo + int(np.argmax(area))
        chosen[i + 1] = a
    return finite[chosen]
