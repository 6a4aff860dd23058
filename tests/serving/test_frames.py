"""Float frames: marked while their columns are the shared ones, unmarked once changed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferryml.serving._frames import float_columns, float_frame


def test_a_float_frame_is_known_until_its_columns_change() -> None:
    frame = float_frame(np.array([[1.0, 2.0]]), ["a", "b"])
    assert float_columns(frame) == ("a", "b")
    assert frame.to_numpy().dtype == np.float64
    added = frame.copy()
    added["c"] = "text"
    renamed = frame.rename(columns={"a": "z"})
    for changed in (added, renamed, frame[["b", "a"]], pd.DataFrame({"a": [1.0], "b": [2.0]})):
        assert float_columns(changed) is None
