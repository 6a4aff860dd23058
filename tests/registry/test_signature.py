"""The signature check every prediction goes through: values no model can take are refused
with the column named, values that convert without loss are converted."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ferryml.errors import InvalidArgument
from ferryml.registry.signature import ColumnSpec, Signature

SIGNATURE = Signature(
    (
        ColumnSpec("x", "float"),
        ColumnSpec("gap", "float", optional=True),
        ColumnSpec("n", "integer"),
    )
)


def test_whole_floats_become_integers_and_optional_columns_keep_their_gaps() -> None:
    frame = SIGNATURE.enforce({"x": [1.5, 2.0], "gap": [math.nan, 1.0], "n": [3.0, 4.0]})
    assert frame["n"].tolist() == [3, 4] and frame["n"].dtype == "int64"
    assert math.isnan(frame["gap"][0])


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"x": [1.0, math.nan], "n": [1, 2]},
            "Column 'x' has a missing value (NaN or null) in row 1; the model needs a number "
            "in every row of it.",
        ),
        (
            {"x": [1.0, -math.inf], "n": [1, 2]},
            "Column 'x' has -inf in row 1, beyond what a model takes (±3.4e+38, float32); send "
            "a finite number in that range.",
        ),
        (
            {"x": [1.0, 2.0], "gap": [1e39, 1.0], "n": [1, 2]},
            "Column 'gap' has 1e+39 in row 0, beyond what a model takes (±3.4e+38, float32); "
            "send a finite number in that range.",
        ),
        (
            {"x": [True, False], "n": [1, 2]},
            "Column 'x' has boolean values (e.g. True); the model expects float. Send float "
            "values for it.",
        ),
        (
            {"x": [1.0, 2.0], "n": [True, False]},
            "Column 'n' has boolean values (e.g. True); the model expects integer. Send integer "
            "values for it.",
        ),
        (
            {"x": [1.0, 2.0], "n": [1.0, 1e308]},
            "Column 'n' has 1e+308, beyond what an integer holds (±9.2e+18); send a whole "
            "number in that range.",
        ),
    ],
)
def test_values_no_model_can_take_are_refused_naming_the_column(
    columns: dict[str, list[object]], message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        SIGNATURE.enforce(pd.DataFrame(columns))
    assert str(caught.value) == message
