"""Frames of float64 values built for one column list, marked as such, so the server's
hot path (the model's input, the write-ahead record, the log's Parquet) takes their array
without looking at each column's type."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["FLOATS", "float_columns", "float_frame", "shared_float_columns", "stack"]

FLOATS = "ferryml.floats"  # attrs key: the column names of a frame that float_frame made


@functools.lru_cache(maxsize=256)
def _index(columns: tuple[str, ...]) -> pd.Index:
    # One Index per column list, shared by every request's frame: building it from the
    # names costs ten times the rest of a one-row frame.
    return pd.Index(columns)


def float_frame(values: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """A frame of float64 ``values`` (rows x columns), marked so ``float_columns`` knows it
    for one without looking at each column's type."""
    names = tuple(columns)
    frame = pd.DataFrame(values, columns=_index(names), copy=False)
    frame.attrs[FLOATS] = names
    return frame


def float_columns(frame: pd.DataFrame) -> tuple[str, ...] | None:
    """The column names of a frame made by ``float_frame`` (and not since given other
    columns): its ``to_numpy()`` is then its float64 values. None for any other frame."""
    names = frame.attrs.get(FLOATS)
    # The shared Index still in place: no column was added, dropped or renamed since.
    return names if names is not None and frame.columns is _index(names) else None


def shared_float_columns(frames: Sequence[pd.DataFrame]) -> tuple[str, ...] | None:
    """The column names of ``frames`` when all are float frames of the same unique columns
    (their arrays stack into one); None otherwise."""
    names = {float_columns(f) for f in frames}
    if len(names) != 1:
        return None
    (same,) = names
    return same if same is not None and len(set(same)) == len(same) else None


def stack(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``frames`` one under the other, rows renumbered: float frames of the same columns
    as one float frame (one array: a fraction of ``pd.concat``'s cost for many small
    frames), others by ``pd.concat``. One frame is returned as it is."""
    if len(frames) == 1:
        return frames[0]
    same = shared_float_columns(frames)
    if same is not None:
        return float_frame(np.vstack([f.to_numpy() for f in frames]), same)
    return pd.concat(frames, ignore_index=True)
