"""Drift of a Parquet dataset larger than memory from a reference profile.

``detect_dataset_drift(reference, "logs/", where={"date": "2026-12-01"})`` reads the
current data batch by batch (here, or file by file on Dask workers), counting each
column's values on the reference's bins (numeric) or by value (categorical), and runs
``detect_drift``'s tests on those counts. The counts add up, so the report is the one
``detect_drift(reference_profile, whole_frame)`` gives, to float rounding, with memory
bounded by a batch; a cluster gives the local result exactly.

A column ``x`` is read from ``x``, or from ``feature.x`` (the prediction log's layout).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ferryml.data.dataset import (
    BATCH_ROWS,
    ParquetDataset,
    _fragment_batches,
    _project_root,
    open_dataset,
    profile_dataset,
)
from ferryml.data.profile import NumericProfile, Profile, profile_frame
from ferryml.errors import InvalidArgument
from ferryml.monitoring._column_drift import Raw, column_drift, raw_column
from ferryml.monitoring._stats import _bin_counts, _count_values, _NumCounts
from ferryml.monitoring.drift import DriftReport, _check_share, _names, _options

__all__ = ["detect_dataset_drift"]

_FEATURE = "feature."


def detect_dataset_drift(
    reference: Profile | pd.DataFrame | str | os.PathLike[str] | ParquetDataset,
    current: str | os.PathLike[str] | ParquetDataset,
    *,
    where: Mapping[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    prediction: str | Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    numeric_test: str | None = None,
    categorical_test: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    share_threshold: float = 0.5,
    bins: int = 20,
    max_categories: int = 50,
    batch_rows: int = BATCH_ROWS,
    executor: Any = None,
    address: str | None = None,
) -> DriftReport:
    """Test every column of the Parquet dataset ``current`` for drift from ``reference``.

    Args:
        reference: a stored ``Profile``; a DataFrame or another dataset is profiled first
            (``bins``, ``max_categories``).
        current: a Parquet file, folder or ``s3://`` prefix, hive-partitioned or not.
        where: ``{column: value}`` the current rows must match, e.g. one day's partition
            ``{"date": "2026-12-01"}``.
        columns, prediction, tests, numeric_test, categorical_test, thresholds,
            share_threshold: as in ``detect_drift``.
        batch_rows: rows read at once; memory grows with it, not with the data.
        executor, address: where the reading runs, as in ``profile_dataset``.

    Returns:
        A ``DriftReport`` (binned: every column's ``exact`` is False).

    Raises:
        NotFound: the dataset does not exist.
        InvalidArgument: as ``detect_drift`` and ``open_dataset``, or no row matches.
        StoreUnavailable: the Dask scheduler cannot be reached.
    """
    from ferryml._dask import runner

    profile = _reference(reference, bins, max_categories, executor, address)
    if profile.rows == 0:
        raise InvalidArgument("The reference profile has no rows; profile non-empty data.")
    dataset = current if isinstance(current, ParquetDataset) else open_dataset(current)
    if where is not None:
        dataset = open_dataset(dataset.url, where=where)
    predictions = _names(prediction, "prediction")
    features = (
        _names(columns, "columns")
        if columns is not None
        else [n for n in profile.columns if n not in predictions]
    )
    wanted = [*features, *(p for p in predictions if p not in features)]
    if not wanted:
        raise InvalidArgument("No columns to compare; pass columns=[...] or a reference with some.")
    sources = _sources(dataset, profile, wanted)
    _check_share(share_threshold)
    options = _options(
        wanted, tests, numeric_test, categorical_test, thresholds, bins, max_categories
    )
    refs = {name: profile.columns[name] for name in wanted}
    total: dict[str, _Counts] | None = None
    with runner(executor, address=address, root=_project_root()) as run:
        # only numeric columns' bins travel to the workers (categorical ones count values)
        edges = {n: r if isinstance(r, NumericProfile) else None for n, r in refs.items()}
        tasks = [(dataset, f, sources, edges, batch_rows) for f in dataset.fragments]
        for part in run.map(_count_fragment, tasks):
            total = part if total is None else {n: total[n].add(part[n]) for n in wanted}
    if total is None or total[wanted[0]].rows == 0:
        raise InvalidArgument(
            f"Dataset {dataset.url!r} has no rows"
            + (f" where {dict(where)}" if where else "")
            + "; check the path and the where= values."
        )
    results = {
        name: column_drift(name, refs[name], None, total[name].raw(refs[name]), options)
        for name in wanted
    }
    return DriftReport(
        columns={n: results[n] for n in features},
        prediction={n: results[n] for n in predictions},
        share_threshold=float(share_threshold),
        reference_rows=profile.rows,
        current_rows=total[wanted[0]].rows,
    )


def _reference(
    reference: Any, bins: int, max_categories: int, executor: Any, address: str | None
) -> Profile:
    if isinstance(reference, Profile):
        return reference
    if isinstance(reference, pd.DataFrame):
        return profile_frame(reference, bins=bins, max_categories=max_categories)
    if isinstance(reference, str | os.PathLike | ParquetDataset):
        return profile_dataset(
            reference, bins=bins, max_categories=max_categories, executor=executor, address=address
        )
    raise InvalidArgument(
        f"reference must be a Profile, a DataFrame or a dataset path, got "
        f"{type(reference).__name__}."
    )


def _sources(dataset: ParquetDataset, profile: Profile, wanted: list[str]) -> dict[str, str]:
    """Each compared column's name in the dataset: itself, or ``feature.<name>``."""
    names = set(dataset.column_names)
    sources, missing = {}, []
    for name in wanted:
        if name not in profile.columns:
            raise InvalidArgument(
                f"The reference profile has no column {name!r}; it has "
                f"{', '.join(map(repr, profile.columns)) or 'none'}. Pass columns=[...] to "
                "compare a subset."
            )
        if name in names:
            sources[name] = name
        elif _FEATURE + name in names:
            sources[name] = _FEATURE + name
        else:
            missing.append(name)
    if missing:
        raise InvalidArgument(
            f"Dataset {dataset.url!r} has no column {', '.join(map(repr, missing))}; it has "
            f"{', '.join(map(repr, dataset.column_names))}. Pass columns=[...] to compare a "
            "subset."
        )
    return sources


@dataclass
class _Counts:
    """One column of the current data, counted: rows, missing values, and either the
    numeric values on the reference's bins or the count of each value."""

    rows: int = 0
    missing: int = 0
    numeric_kind: str | None = None
    numeric: _NumCounts | None = None
    values: dict[str, int] = field(default_factory=dict)
    seen: bool = False  # a value arrived, so the kind is known

    def add(self, other: _Counts) -> _Counts:
        rows, missing = self.rows + other.rows, self.missing + other.missing
        if not (self.seen and other.seen):  # one side has no values: the other's kind
            return replace(self if self.seen else other, rows=rows, missing=missing)
        if self.numeric_kind != other.numeric_kind:
            kinds = sorted(k or "categorical" for k in (self.numeric_kind, other.numeric_kind))
            raise InvalidArgument(
                f"A column is {kinds[0]} in some files and {kinds[1]} in others; give it one "
                "type in every file."
            )
        numeric = self.numeric
        if numeric is not None and other.numeric is not None:
            numeric = numeric.add(other.numeric)
        values = dict(self.values)
        for key, n in other.values.items():
            values[key] = values.get(key, 0) + n
        return _Counts(rows, missing, self.numeric_kind, numeric, values, True)

    def raw(self, ref: Any) -> Raw:
        if self.numeric_kind is not None:
            bins = None
            if self.numeric is not None and isinstance(ref, NumericProfile):
                bins = _bin_counts(ref, self.numeric)
            return Raw(self.rows, self.missing, None, self.numeric_kind, bins=bins)
        keys = np.array(list(self.values), dtype=object)
        counts = np.fromiter(self.values.values(), dtype=np.int64, count=len(keys))
        return Raw(self.rows, self.missing, None, None, keys, counts)


def _count_fragment(
    task: tuple[ParquetDataset, Any, dict[str, str], dict[str, Any], int],
) -> dict[str, _Counts]:
    dataset, fragment, sources, refs, batch_rows = task
    counts = {name: _Counts() for name in sources}
    columns = list(dict.fromkeys(sources.values()))
    for batch in _fragment_batches(dataset, fragment, columns, batch_rows):
        frame = batch.to_pandas()
        for name, source in sources.items():
            counts[name] = counts[name].add(_count(frame[source], refs[name]))
    return counts


def _count(series: pd.Series, ref: Any) -> _Counts:
    raw = raw_column(series)
    if not raw.count:
        return _Counts(raw.rows, raw.missing)
    if raw.values is not None:
        numeric = None
        if isinstance(ref, NumericProfile) and ref.count:
            numeric = _count_values(ref, raw.values)
        return _Counts(raw.rows, raw.missing, raw.numeric_kind, numeric, seen=True)
    assert raw.keys is not None and raw.counts is not None
    values = dict(zip(raw.keys.tolist(), raw.counts.tolist(), strict=True))
    return _Counts(raw.rows, raw.missing, None, None, values, seen=True)
