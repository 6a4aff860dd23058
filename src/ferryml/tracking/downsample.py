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
    xs = x[finite].astype(np.float64).tolist()
    ys = y[finite].astype(np.float64).tolist()
    n = len(xs)
    # Bucket edges over the points between the first and the last.
    edges = np.linspace(1, n - 1, points - 1).astype(np.int64).tolist()
    chosen = [0] * points
    chosen[-1] = n - 1
    # Plain floats: the buckets hold a few points each, where numpy's per-call cost was
    # most of the time.
    a = 0
    for i in range(points - 2):
        lo, hi = edges[i], edges[i + 1]
        nxt_lo, nxt_hi = hi, edges[i + 2] if i + 2 < len(edges) else n
        if nxt_hi <= nxt_lo:
            nxt_lo, nxt_hi = n - 1, n
        size = nxt_hi - nxt_lo
        cx, cy = sum(xs[nxt_lo:nxt_hi]) / size, sum(ys[nxt_lo:nxt_hi]) / size
        ax, ay = xs[a], ys[a]
        best, best_area = lo, -1.0
        for j in range(lo, hi):
            area = abs((ax - cx) * (ys[j] - ay) - (ax - xs[j]) * (cy - ay))
            if area > best_area:
                best, best_area = j, area
        a = best
        chosen[i + 1] = a
    return finite[np.array(chosen, dtype=np.int64)]
