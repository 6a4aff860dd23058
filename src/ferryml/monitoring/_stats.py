"""The statistics behind drift detection: reference and current values on the
reference's bins (from raw values or from profiles), and the tests over them (PSI,
Jensen–Shannon, chi-square, binned KS and Wasserstein, exact Wasserstein)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from ferryml.data.profile import CategoricalProfile, NumericProfile

OTHER = "(other)"
_NAN = float("nan")


# -- binned views --------------------------------------------------------------------


@dataclass(frozen=True)
class _NumBins:
    """Both sides over the reference's bins, extended by a bin below and one above."""

    edges: np.ndarray  # k + 3 edges: [low, e0, ..., ek, high]
    ref: np.ndarray  # k + 2 counts
    cur: np.ndarray
    below_mean: float  # mean of the current values below e0 (NaN if none)
    above_mean: float


@dataclass(frozen=True)
class _CatBins:
    labels: list[str]
    ref: np.ndarray
    cur: np.ndarray
    new: list[tuple[str, int]] | None  # current-only values and counts; None if unknowable


@dataclass
class _NumCounts:
    """Current values counted on the reference's bins, addable: what ``_bin_values`` needs
    of them, so a dataset is binned batch by batch with the same result."""

    counts: np.ndarray  # k + 2: below e0, the k bins, above ek
    below_sum: float = 0.0
    above_sum: float = 0.0
    low: float = math.inf  # smallest and largest value
    high: float = -math.inf

    def add(self, other: _NumCounts) -> _NumCounts:
        return _NumCounts(
            self.counts + other.counts,
            self.below_sum + other.below_sum,
            self.above_sum + other.above_sum,
            min(self.low, other.low),
            max(self.high, other.high),
        )


def _count_values(ref: NumericProfile, x: np.ndarray) -> _NumCounts:
    e = np.asarray(ref.edges, dtype=np.float64)
    k = e.size - 1
    idx = np.searchsorted(e, x, side="right")  # 0: below e0; i + 1: bin i; k + 1: >= ek
    counts = np.bincount(idx, minlength=k + 2).astype(np.float64)
    sums = np.bincount(idx, weights=x, minlength=k + 2)
    top = np.count_nonzero(x == e[-1])  # the last bin is closed
    counts[k + 1] -= top
    counts[k] += top
    sums[k + 1] -= top * e[-1]
    if not x.size:
        return _NumCounts(counts)
    return _NumCounts(counts, float(sums[0]), float(sums[k + 1]), float(x.min()), float(x.max()))


def _bin_counts(ref: NumericProfile, c: _NumCounts) -> _NumBins:
    e = np.asarray(ref.edges, dtype=np.float64)
    counts = c.counts
    low = c.low if counts[0] else e[0]
    high = c.high if counts[-1] else e[-1]
    return _NumBins(
        np.concatenate(([low], e, [high])),
        np.concatenate(([0.0], np.asarray(ref.counts, dtype=np.float64), [0.0])),
        counts,
        c.below_sum / counts[0] if counts[0] else _NAN,
        c.above_sum / counts[-1] if counts[-1] else _NAN,
    )


def _bin_values(ref: NumericProfile, x: np.ndarray) -> _NumBins:
    return _bin_counts(ref, _count_values(ref, x))


def _bin_profile(ref: NumericProfile, cur: NumericProfile) -> _NumBins:
    e = np.asarray(ref.edges, dtype=np.float64)
    k = e.size - 1
    low, high = min(e[0], cur.min), max(e[-1], cur.max)
    dst = np.concatenate(([low], e, [high]))
    src = np.asarray(cur.edges, dtype=np.float64)
    n = np.asarray(cur.counts, dtype=np.float64)
    a, b = src[:-1], src[1:]
    width = b - a
    overlap = np.minimum(b[:, None], dst[None, 1:]) - np.maximum(a[:, None], dst[None, :-1])
    share = np.clip(overlap, 0.0, None) / np.where(width > 0, width, 1.0)[:, None]
    for i in np.flatnonzero(width <= 0):  # a point mass goes whole to the bin holding it
        share[i] = 0.0
        v = a[i]
        share[
            i, 0 if v < e[0] else k + 1 if v > e[-1] else min(np.searchsorted(e, v, "right"), k)
        ] = 1
    counts = n @ share
    return _NumBins(
        dst,
        np.concatenate(([0.0], np.asarray(ref.counts, dtype=np.float64), [0.0])),
        counts,
        (low + e[0]) / 2 if counts[0] else _NAN,
        (high + e[-1]) / 2 if counts[k + 1] else _NAN,
    )


def _bin_categories(
    ref_keys: Sequence[str],
    ref_counts: np.ndarray,
    ref_other: int,
    cur_keys: np.ndarray,
    cur_counts: np.ndarray,
    cur_other: int,
) -> _CatBins:
    position = pd.Index(ref_keys, dtype=object).get_indexer(cur_keys)
    known = position >= 0
    cur = np.bincount(position[known], weights=cur_counts[known], minlength=len(ref_keys))
    unseen_keys, unseen_counts = cur_keys[~known], cur_counts[~known]
    labels, ref, current = list(ref_keys), [ref_counts.astype(np.float64)], [cur]
    new: list[tuple[str, int]] | None = None
    if ref_other == 0:  # the reference lists every value: the unseen ones are new
        order = np.argsort(-unseen_counts, kind="stable")
        new = [(str(unseen_keys[i]), int(unseen_counts[i])) for i in order]
        labels += [key for key, _ in new]
        ref.append(np.zeros(len(new)))
        current.append(unseen_counts[order].astype(np.float64))
        lumped = float(cur_other)
    else:
        lumped = float(unseen_counts.sum() + cur_other)
    if ref_other or lumped:
        labels.append(OTHER)
        ref.append(np.array([float(ref_other)]))
        current.append(np.array([lumped]))
    return _CatBins(labels, np.concatenate(ref), np.concatenate(current), new)


def _profile_keys(p: CategoricalProfile) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array(list(p.frequencies), dtype=object)
    return keys, np.fromiter(p.frequencies.values(), dtype=np.int64, count=len(keys))


# -- statistics ----------------------------------------------------------------------


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p, q = _floor_zeros(_shares(ref)), _floor_zeros(_shares(cur))
    return float(np.sum((p - q) * np.log(p / q)))


def _floor_zeros(p: np.ndarray) -> np.ndarray:
    """Empty bins get a small share, as Evidently's PSI does, so the logarithm stays finite."""
    nonzero = p[p > 0]
    if nonzero.size == p.size:
        return p
    smallest = float(nonzero.min()) if nonzero.size else 1.0
    return np.where(p > 0, p, smallest / 1e6 if smallest <= 1e-4 else 1e-4)


def _jensenshannon(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(distance.jensenshannon(_shares(ref), _shares(cur)))


def _chisquare(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _binned_ks(b: _NumBins, n: int, m: int) -> tuple[float, float]:
    gap = np.cumsum(_shares(b.ref)) - np.cumsum(_shares(b.cur))
    d = float(np.abs(gap).max())
    return d, float(stats.kstwo.sf(d, round(n * m / (n + m))))


def _binned_wasserstein(b: _NumBins) -> float:
    """W1 between the piecewise-linear CDFs; the outer bins use the current values' means."""
    p, q = _shares(b.ref), _shares(b.cur)
    inner = b.edges[1:-1]
    gap = (np.cumsum(p) - np.cumsum(q))[:-1]  # at each inner edge, e0 .. ek
    left, right, width = gap[:-1], gap[1:], np.diff(inner)
    same_sign = left * right >= 0
    span = np.abs(left) + np.abs(right)
    area = np.where(same_sign, span / 2, (left**2 + right**2) / (2 * np.where(span > 0, span, 1.0)))
    total = float(np.sum(area * width))
    if q[0]:
        total += q[0] * (inner[0] - b.below_mean)
    if q[-1]:
        total += q[-1] * (b.above_mean - inner[-1])
    return total


def _wasserstein(u: np.ndarray, v: np.ndarray) -> float:
    """``scipy.stats.wasserstein_distance(u, v)``, the same sum in the same order, but from
    one merge of the two sorted samples instead of scipy's argsorts (4x faster at 1M)."""
    values = np.concatenate((np.sort(u), np.sort(v)))
    order = np.argsort(values, kind="stable")  # two sorted runs: timsort merges them
    values = values[order]
    below_u = np.cumsum(order < u.size)[:-1]  # values of u up to each merged value
    below_v = np.arange(1, values.size) - below_u
    return float(np.dot(np.abs(below_u / u.size - below_v / v.size), np.diff(values)))


def _norm(std: float) -> float:
    return max(std, 0.001) if math.isfinite(std) else 0.001
