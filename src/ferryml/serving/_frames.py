"""Frames of float64 values built for one column list, marked as such, so the server's
hot path (the model's input, the write-ahead record, the log's Parquet) takes their array
without looking at each column's type."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["FLOATS", "float_columns", "float_frame"]

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
