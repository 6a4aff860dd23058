"""Drift of a Parquet dataset larger than memory from a reference profile: counted batch by
batch (or file by file on a real Dask cluster), it equals detect_drift on the whole frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml.data.dataset import open_dataset
from ferryml.data.profile import profile_frame
from ferryml.errors import InvalidArgument
from ferryml.monitoring.dataset_drift import detect_dataset_drift
from ferryml.monitoring.drift import DriftReport, detect_drift

DAYS = ("2026-12-01", "2026-12-02")


def _rows(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    x[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "e": rng.exponential(2.0 + shift, rows),
            "plan": rng.choice(["free", "pro", "team", *(["new"] if shift else [])], rows),
            "prediction": rng.random(rows) + shift / 4,
        }
    )


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Two days of a prediction log, features named ``feature.<name>``; the second shifted."""
    root = tmp_path_factory.mktemp("drift") / "log"
    days = []
    for i, day in enumerate(DAYS):
        frame = _rows(4_000, i + 1, shift=float(i))
        days.append(frame.assign(date=day))
        stored = frame.rename(columns={c: f"feature.{c}" for c in ("x", "e", "plan")})
        (root / f"date={day}").mkdir(parents=True)
        for j, part in enumerate((stored.iloc[:2_500], stored.iloc[2_500:])):
            part.to_parquet(root / f"date={day}" / f"part-{j}.parquet")
    return root, pd.concat(days, ignore_index=True)


@pytest.fixture(scope="module")
def reference() -> Any:
    return profile_frame(_rows(20_000, 0))


def assert_same_report(got: DriftReport, want: DriftReport) -> None:
    assert (got.reference_rows, got.current_rows) == (want.reference_rows, want.current_rows)
    assert got.drifted_columns == want.drifted_columns
    assert got.prediction_drift == want.prediction_drift
    for name, want_column in [*want.columns.items(), *want.prediction.items()]:
        a = {**got.columns, **got.prediction}[name].to_dict()
        b = want_column.to_dict()
        for key in ("statistic", "current_shares", "reference_shares", "edges"):
            assert np.allclose(a[key], b[key], rtol=1e-9, atol=1e-12), (name, key)
        for key in ("test", "drift_detected", "current_count", "current_missing_rate"):
            assert a[key] == b[key], (name, key)
        assert set(a["new_categories"]) == set(b["new_categories"])


def test_a_day_counted_in_small_batches_equals_detect_drift_on_the_whole_day(
    log: tuple[Path, pd.DataFrame], reference: Any
) -> None:
    root, whole = log
    for day in DAYS:
        frame = whole[whole["date"] == day].drop(columns="date").reset_index(drop=True)
        want = detect_drift(reference, frame, prediction="prediction")
        got = detect_dataset_drift(
            reference, root, where={"date": day}, prediction="prediction", batch_rows=300
        )
        assert_same_report(got, want)
    assert not detect_dataset_drift(reference, root, where={"date": DAYS[0]}).dataset_drift
    shifted = detect_dataset_drift(reference, root, where={"date": DAYS[1]})
    assert shifted.dataset_drift and "x" in shifted.drifted_columns
    assert shifted.columns["plan"].new_categories == ("new",)


def test_dask_gives_the_local_report(
    log: tuple[Path, pd.DataFrame], reference: Any, dask_client: Any
) -> None:
    root, _ = log
    local = detect_dataset_drift(reference, root, prediction="prediction", batch_rows=1_000)
    remote = detect_dataset_drift(
        reference, root, prediction="prediction", batch_rows=1_000, executor=dask_client
    )
    assert remote.to_dict() == local.to_dict()


def test_a_reference_frame_or_dataset_is_profiled_first(log: tuple[Path, pd.DataFrame]) -> None:
    root, _ = log
    day = {"date": DAYS[0]}
    first = open_dataset(root, where=day)
    same_day = detect_dataset_drift(first, root, where=day, columns=["feature.x", "feature.plan"])
    assert same_day.drift_share == 0 and same_day.columns["feature.x"].statistic < 0.02
    frame = pd.read_parquet(root / f"date={DAYS[1]}")
    shifted = detect_dataset_drift(frame, root, where=day)
    assert shifted.dataset_drift and shifted.reference_rows == len(frame)


def test_columns_the_dataset_or_reference_lacks_get_one_clear_line(
    log: tuple[Path, pd.DataFrame], reference: Any
) -> None:
    root, _ = log
    with pytest.raises(InvalidArgument, match=r"reference profile has no column 'age'"):
        detect_dataset_drift(reference, root, columns=["x", "age"])
    narrow = profile_frame(pd.DataFrame({"x": [1.0, 2.0], "tenure": [3, 4]}))
    with pytest.raises(InvalidArgument, match=r"has no column 'tenure'; it has 'feature.x'"):
        detect_dataset_drift(narrow, root)
    with pytest.raises(InvalidArgument, match=r"has no rows where \{'date': '2027-01-01'\}"):
        detect_dataset_drift(reference, root, where={"date": "2027-01-01"})
