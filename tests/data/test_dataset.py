"""Profiles of Parquet datasets larger than memory: batch by batch, file by file on a real
Dask cluster, from local folders and S3 prefixes, against profiling the whole frame."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml.data.dataset import iter_batches, open_dataset, profile_dataset
from ferryml.data.profile import CategoricalProfile, NumericProfile, Profile, profile_frame
from ferryml.errors import InvalidArgument, NotFound

DAYS = ("2026-12-01", "2026-12-02", "2026-12-03")


def _day(day: str, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, rows)
    x[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 100, rows),
            "plan": rng.choice(["free", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
            "time": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.random(rows), unit="D"),
        }
    )


def write_days(root: Path, rows: int = 3_000, files: int = 2) -> pd.DataFrame:
    """A dataset hive-partitioned by date; returns it whole, as read back, in file order."""
    frames = []
    for i, day in enumerate(DAYS):
        folder = root / f"date={day}"
        folder.mkdir(parents=True)
        frame = _day(day, rows, i)
        size = -(-rows // files)
        for j in range(files):
            part = frame.iloc[j * size : (j + 1) * size].reset_index(drop=True)
            part.to_parquet(folder / f"part-{j}.parquet", row_group_size=700)
            frames.append(part.assign(date=day))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("days") / "log"
    return root, write_days(root)


def assert_within_merge_terms(got: Profile, whole: Profile) -> None:
    """What ``merge`` keeps exactly, and the rest to rounding or within the binning."""
    assert got.rows == whole.rows
    assert list(got.columns) == list(whole.columns)
    for name, a in got.columns.items():
        b = whole.columns[name]
        assert (a.count, a.missing) == (b.count, b.missing), name
        if isinstance(a, NumericProfile):
            assert isinstance(b, NumericProfile) and a.kind == b.kind
            assert (a.min, a.max) == (b.min, b.max)
            assert math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(a.std, b.std, rel_tol=1e-9)
            assert sum(a.counts) == a.count and (a.edges[0], a.edges[-1]) == (a.min, a.max)
        else:
            assert isinstance(a, CategoricalProfile) and isinstance(b, CategoricalProfile)
            assert dict(a.frequencies) == dict(b.frequencies) and a.other == b.other


def test_a_dataset_profiled_in_small_batches_matches_the_whole_frame(
    days: tuple[Path, pd.DataFrame],
) -> None:
    root, whole = days
    seen: list[int] = []
    profile = profile_dataset(root, batch_rows=400, on_progress=seen.append)
    assert_within_merge_terms(profile, profile_frame(whole))
    # bounded: never more than a batch at a time, and every row once
    assert max(seen) <= 400 and sum(seen) == len(whole) and len(seen) >= len(whole) // 400


def test_one_batch_gives_exactly_the_in_memory_profile(tmp_path: Path) -> None:
    frame = _day(DAYS[0], 2_000, 7)
    frame.to_parquet(tmp_path / "one.parquet")
    assert profile_dataset(tmp_path / "one.parquet") == profile_frame(frame)


def test_a_day_is_read_from_its_partition_alone(days: tuple[Path, pd.DataFrame]) -> None:
    root, whole = days
    dataset = open_dataset(root, where={"date": DAYS[1]})
    assert len(dataset.files) == 2 and all(f"date={DAYS[1]}" in f for f in dataset.files)
    profile = profile_dataset(dataset, batch_rows=10_000)
    day = whole[whole["date"] == DAYS[1]]
    assert_within_merge_terms(profile, profile_frame(day.reset_index(drop=True)))
    batches = list(iter_batches(dataset, columns=["x"], batch_rows=250))
    assert sum(b.num_rows for b in batches) == len(day)
    assert max(b.num_rows for b in batches) <= 250 and batches[0].schema.names == ["x"]


def test_dask_workers_profile_the_files_and_the_merge_equals_local(
    days: tuple[Path, pd.DataFrame], dask_client: Any
) -> None:
    root, _ = days
    local = profile_dataset(root, batch_rows=500, executor="local")
    assert profile_dataset(root, batch_rows=500, executor=dask_client) == local


def test_an_s3_prefix_is_profiled_like_the_local_folder(
    days: tuple[Path, pd.DataFrame], s3_env: str, s3_bucket: str, s3_client: Any
) -> None:
    root, _ = days
    for file in sorted(root.rglob("*.parquet")):
        key = f"scale/log/{file.relative_to(root).as_posix()}"
        s3_client.upload_file(str(file), s3_bucket, key)
    remote = profile_dataset(f"s3://{s3_bucket}/scale/log", where={"date": DAYS[0]})
    assert remote == profile_dataset(root, where={"date": DAYS[0]})


@pytest.mark.parametrize(
    ("make", "call", "error", "message"),
    [
        (lambda p: p, lambda p: open_dataset(p / "absent"), NotFound, "not found"),
        (
            lambda p: (p / "x.parquet").write_text("a,b\n1,2\n") and p,
            lambda p: profile_dataset(p),
            InvalidArgument,
            "cannot be read as Parquet",
        ),
        (
            lambda p: _day(DAYS[0], 10, 0).to_parquet(p / "a.parquet"),
            lambda p: open_dataset(p, columns=["x", "age"]),
            InvalidArgument,
            "has no column 'age'; it has 'x', 'n', 'plan', 'time'",
        ),
        (lambda p: None, lambda p: open_dataset(p), InvalidArgument, "holds no Parquet file"),
        (
            lambda p: _day(DAYS[0], 10, 0).to_parquet(p / "a.parquet"),
            lambda p: profile_dataset(p, batch_rows=0),
            InvalidArgument,
            "batch_rows must be a whole number >= 1",
        ),
    ],
    ids=["missing", "not-parquet", "wrong-column", "empty-folder", "bad-batch"],
)
def test_bad_input_gets_one_clear_line(
    tmp_path: Path,
    make: Callable[[Path], Any],
    call: Callable[[Path], Any],
    error: type[Exception],
    message: str,
) -> None:
    make(tmp_path)
    with pytest.raises(error, match=message) as caught:
        call(tmp_path)
    assert "\n" not in str(caught.value)


def test_ferry_data_profile_and_drift_read_a_dataset_and_say_what_drifted(
    days: tuple[Path, pd.DataFrame], tmp_path: Path, cli: Callable[..., Any]
) -> None:
    root, whole = days
    saved = tmp_path / "reference.json"
    done = cli("data", "profile", str(root), "--where", f"date={DAYS[0]}", "--output", str(saved))
    assert (done.code, done.out.strip()) == (
        0,
        f"3,000 rows, 5 columns; profile written to {saved}",
    )
    same = cli("data", "drift", str(saved), str(root), "--where", f"date={DAYS[0]}", "--json")
    assert same.code == 0 and json.loads(same.out)["drift_share"] == 0
    other = cli("data", "drift", str(saved), str(root), "--where", f"date={DAYS[1]}")
    assert (other.code, other.out) == (
        0,
        "3,000 rows against 3,000: 2 of 5 columns drifted (time, date)\n",
    )
    shifted = whole.head(3_000).drop(columns="date").assign(x=whole["x"] + 10, n=whole["n"] + 50)
    shifted.to_parquet(tmp_path / "shifted.parquet")
    moved = cli("data", "drift", str(tmp_path / "shifted.parquet"), str(root))
    assert moved.code == 1 and moved.out.endswith("; dataset drift\n")  # exit 1: it drifted
    bad = cli("data", "profile", str(root), "--where", "date")
    assert (bad.code, bad.err) == (
        2,
        "error: --where 'date' is not COLUMN=VALUE, e.g. date=2026-12-01.\n",
    )
    absent = cli("data", "drift", str(tmp_path / "nope.json"), str(root))
    assert absent.code == 2 and absent.err.count("\n") == 1 and "not found" in absent.err
