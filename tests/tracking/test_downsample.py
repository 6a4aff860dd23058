"""LTTB keeps a series' shape: its ends, its peaks and dips, and never a non-finite value."""

from __future__ import annotations

import numpy as np
import pytest

from ferryml.tracking.downsample import lttb


def test_a_short_series_is_kept_whole_without_its_non_finite_values() -> None:
    y = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    assert lttb(np.arange(5), y, 10).tolist() == [0, 2, 4]


def test_a_long_series_keeps_its_ends_peaks_and_dips() -> None:
    x = np.arange(100_000)
    y = np.sin(x / 5_000)
    y[31_337], y[77_777] = 40.0, -40.0
    y[50_000] = np.nan
    chosen = lttb(x, y, 500)
    assert len(chosen) == 500
    assert chosen[0] == 0 and chosen[-1] == 99_999
    assert np.all(np.diff(chosen) > 0)
    assert {31_337, 77_777} <= set(chosen.tolist())
    assert np.isfinite(y[chosen]).all()


def test_too_few_points_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        lttb(np.arange(10), np.arange(10.0), 2)
