"""Float frames: marked while their columns are the shared ones, unmarked once changed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferryml.serving._frames import float_columns, float_frame, shared_float_columns, stack


def test_a_float_frame_is_known_until_its_columns_change() -> None:
    frame = float_frame(np.array([[1.0, 2.0]]), ["a", "b"])
    assert float_columns(frame) == ("a", "b")
    assert frame.to_numpy().dtype == np.float64
    added = frame.copy()
    added["c"] = "text"
    renamed = frame.rename(columns={"a": "z"})
    for changed in (added, renamed, frame[["b", "a"]], pd.DataFrame({"a": [1.0], "b": [2.0]})):
        assert float_columns(changed) is None


def test_stack_makes_one_float_frame_of_float_frames_and_concats_the_rest() -> None:
    a = float_frame(np.array([[1.0, 2.0]]), ["a", "b"])
    b = float_frame(np.array([[3.0, 4.0], [5.0, 6.0]]), ["a", "b"])
    stacked = stack([a, b])
    assert float_columns(stacked) == ("a", "b")
    assert stacked.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert stacked.index.tolist() == [0, 1, 2]
    assert stack([a]) is a
    plain = pd.DataFrame({"a": [7], "b": ["x"]})
    mixed = stack([a, plain])
    assert float_columns(mixed) is None
    assert mixed.to_dict("list") == {"a": [1.0, 7.0], "b": [2.0, "x"]}
    other = float_frame(np.array([[1.0, 2.0]]), ["b", "a"])
    assert float_columns(stack([a, other])) is None  # not the same columns: by name
    assert stack([a, other])["a"].tolist() == [1.0, 2.0]
    twice = float_frame(np.array([[1.0, 2.0]]), ["a", "a"])
    assert shared_float_columns([twice, twice]) is None
