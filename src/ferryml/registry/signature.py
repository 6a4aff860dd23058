"""Model signatures: the input columns a model expects, with their types. Inferred from
the input example or the training frame, stored with the version, enforced on every
prediction: types coerced where no information is lost, anything else a clear error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ferryml.errors import InvalidArgument

__all__ = ["ColumnSpec", "Signature", "as_frame", "infer_signature"]

TYPES = ("integer", "float", "boolean", "string", "datetime")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # one of TYPES
    optional: bool = False  # may be missing or null


@dataclass(frozen=True)
class Signature:
    inputs: tuple[ColumnSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [asdict(c) for c in self.inputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(tuple(ColumnSpec(**c) for c in data["inputs"]))

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def compatible_with(self, other: Signature) -> list[str]:
        """What a caller of ``other`` would lack with this signature; empty if none."""
        mine = {c.name: c for c in self.inputs}
        problems = []
        for column in other.inputs:
            expected = mine.get(column.name)
            if expected is None:
                problems.append(f"column {column.name!r} is no longer an input")
            elif expected.type != column.type:
                problems.append(
                    f"column {column.name!r} changed from {column.type} to {expected.type}"
                )
        problems += [
            f"new required column {c.name!r}"
            for c in self.inputs
            if not c.optional and c.name not in {o.name for o in other.inputs}
        ]
        return problems

    def enforce(self, data: Any, *, predicting: bool = True) -> pd.DataFrame:
        """``data`` as a DataFrame with exactly the signature's columns, in order. The one
        check of a model's input, for ``load_model(...).predict`` and the server alike.

        Args:
            predicting: also refuse numbers no model can take: a missing value in a column
                that is not optional, infinity, or beyond float32's range (where models such
                as scikit-learn's trees compute).

        Raises:
            InvalidArgument: a required column is missing, or a column's values cannot be
                converted to its type without loss; the message names the column.
        """
        frame = as_frame(data, self.columns)
        out: dict[str, Any] = {}
        for spec in self.inputs:
            if spec.name not in frame.columns:
                if not spec.optional:
                    raise InvalidArgument(
                        f"Input is missing column {spec.name!r}, which the model needs "
                        f"({spec.type}). Columns given: {', '.join(map(str, frame.columns))}."
                    )
                out[spec.name] = pd.Series([None] * len(frame), dtype=object)
                continue
            out[spec.name] = _coerce(frame[spec.name], spec)
            if predicting and spec.type == "float":
                _check_numbers(out[spec.name], spec)
        return pd.DataFrame(out, index=frame.index)


def _type_of(values: pd.Series) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer"
    if kind == "f":
        return "float"
    if kind == "M":
        return "datetime"
    return "string"


def infer_signature(example: Any) -> Signature:
    """The signature of a DataFrame (or array, dict of columns, list of records)."""
    frame = as_frame(example, None)
    if frame.empty and not len(frame.columns):
        raise InvalidArgument("Cannot infer a signature from an empty example.")
    return Signature(
        tuple(
            ColumnSpec(str(name), _type_of(frame[name]), bool(frame[name].isna().any()))
            for name in frame.columns
        )
    )


def as_frame(data: Any, columns: Sequence[str] | None) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a 2-D array (columns in signature order), a mapping of
    columns, or a list of records."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame().T if columns else data.to_frame()
    if isinstance(data, np.ndarray):
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2:
            raise InvalidArgument(f"Input array has {data.ndim} dimensions; pass rows × columns.")
        names = list(columns) if columns is not None else [str(i) for i in range(data.shape[1])]
        if len(names) != data.shape[1]:
            raise InvalidArgument(
                f"Input array has {data.shape[1]} columns; the model expects {len(names)}: "
                f"{', '.join(names)}."
            )
        return pd.DataFrame(data, columns=names)
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame(
                {k: v if isinstance(v, (list, tuple, np.ndarray)) else [v] for k, v in data.items()}
            )
        except ValueError as e:
            raise InvalidArgument(f"Input columns have different lengths: {e}.") from e
    if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
        return pd.DataFrame(data)
    raise InvalidArgument(
        f"Cannot read model input of type {type(data).__name__}: pass a DataFrame, a 2-D "
        "array, a mapping of columns or a list of records."
    )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_numbers(values: pd.Series, spec: ColumnSpec) -> None:
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(numbers)
    if missing.any() and not spec.optional:
        raise InvalidArgument(
            f"Column {spec.name!r} has a missing value (NaN or null) in row "
            f"{int(missing.argmax())}; the model needs a number in every row of it."
        )
    with np.errstate(invalid="ignore"):
        wild = np.abs(numbers) > _FLOAT32_MAX  # NaN compares False
    if wild.any():
        raise InvalidArgument(
            f"Column {spec.name!r} has {numbers[wild.argmax()]:g} in row {int(wild.argmax())}, "
            f"beyond what a model takes (±{_FLOAT32_MAX:.3g}, float32); send a finite number "
            "in that range."
        )


def _coerce(values: pd.Series, spec: ColumnSpec) -> pd.Series:
    given = _type_of(values)
    if given == spec.type or values.isna().all():
        return values
    if not spec.optional and values.isna().any() and spec.type in ("integer", "boolean"):
        raise InvalidArgument(
            f"Column {spec.name!r} has missing values; the model needs "
            f"{spec.type} values in every row."
        )
    try:
        if spec.type == "float" and given == "integer":  # a boolean is no number (JSON true)
            return values.astype("float64")
        if spec.type == "integer" and given == "float":
            whole = values.dropna()
            if (whole == whole.round()).all():
                huge = whole.abs() >= 2.0**63  # the cast would wrap round silently
                if huge.any():
                    raise InvalidArgument(
                        f"Column {spec.name!r} has {whole[huge].iloc[0]:g}, beyond what an "
                        "integer holds (±9.2e+18); send a whole number in that range."
                    )
                return values.astype("int64")
        if spec.type == "boolean" and given == "integer" and values.isin([0, 1]).all():
            return values.astype(bool)
        if spec.type == "datetime" and given == "string":
            return pd.to_datetime(values, format="ISO8601")
        if spec.type == "string":
            return values.astype(str)
    except InvalidArgument:
        raise
    except (ValueError, TypeError):
        pass
    example = values.dropna().iloc[0] if values.notna().any() else None
    if isinstance(example, np.generic):
        example = example.item()  # shown as a user wrote it: True, not np.True_
    if given == "string" and isinstance(example, bool):
        given = "boolean"
    raise InvalidArgument(
        f"Column {spec.name!r} has {given} values (e.g. {example!r}); the model expects "
        f"{spec.type}. Send {spec.type} values for it."
    )
