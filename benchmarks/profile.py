"""Profile benchmark: time and peak memory of profile_frame on 1,000,000 rows x 25 columns.

    python benchmarks/profile.py [--rows N] [--repeats R] [--json]

The frame: 20 numeric columns (normal, integer, exponential and float columns with 5% NaN)
and 5 categorical (str columns with 4, 50, 1,000 and 100,000 distinct values, and a bool).
Time is the median of the repeats. Peak memory is measured two ways: tracemalloc's peak of
what profiling allocated (numpy and Python objects; pyarrow's own allocations are outside its
view), and the process's resident memory sampled every millisecond while profiling, above
what it was before (the frame is not counted; free heap pages are returned to the OS first
with glibc's malloc_trim so reused pages do not hide growth). Linux only (/proc/self/statm).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import statistics
import sys
import threading
import time
import tracemalloc

import numpy as np
import pandas as pd

from ferryml.data.profile import merge, profile_frame


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(8):
        columns[f"normal_{i}"] = rng.normal(i, 1 + i, rows)
    for i in range(4):
        columns[f"int_{i}"] = rng.integers(0, 10 ** (i + 2), rows)
    for i in range(4):
        columns[f"exp_{i}"] = rng.exponential(1 + i, rows)
    for i in range(4):
        x = rng.normal(0, 1, rows)
        x[rng.random(rows) < 0.05] = np.nan
        columns[f"nan_{i}"] = x
    for name, distinct in (("cat_4", 4), ("cat_50", 50), ("cat_1k", 1000), ("cat_100k", 100_000)):
        labels = np.array([f"{name}_{j}" for j in range(distinct)], dtype=object)
        columns[name] = pd.Series(labels[rng.integers(0, distinct, rows)], dtype="str")
    columns["flag"] = rng.random(rows) < 0.3
    return pd.DataFrame(columns)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def release_free_memory() -> None:
    """Give freed heap pages back to the OS, so RSS growth shows what profiling touches."""
    libc = ctypes.util.find_library("c")
    if libc:
        ctypes.CDLL(libc).malloc_trim(0)


class RssSampler:
    """Highest resident memory seen while the block runs, sampled from a thread."""

    def __enter__(self) -> RssSampler:
        self.peak, self._done = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    df = make_frame(args.rows)
    frame_mb = df.memory_usage(deep=True).sum() / 2**20
    profile_frame(df.head(1000))  # warm imports and caches
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        profile = profile_frame(df)
        seconds.append(time.perf_counter() - start)

    gc.collect()
    release_free_memory()
    rss_before = rss_mb()
    with RssSampler() as sampler:
        profile_frame(df)
    rss_growth = sampler.peak - rss_before

    gc.collect()
    tracemalloc.start()
    profile_frame(df)
    traced_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    half = args.rows // 2
    start = time.perf_counter()
    merge(profile_frame(df.iloc[:half]), profile_frame(df.iloc[half:]))
    halves = time.perf_counter() - start
    blob = json.dumps(profile.to_dict(), allow_nan=False)

    result = {
        "rows": args.rows,
        "columns": df.shape[1],
        "profile_s": round(statistics.median(seconds), 3),
        "profile_s_all": [round(s, 3) for s in seconds],
        "peak_alloc_mb": round(traced_mb, 1),
        "frame_mb": round(frame_mb, 1),
        "peak_rss_growth_mb": round(rss_growth, 1),
        "rss_before_mb": round(rss_before, 1),
        "two_halves_and_merge_s": round(halves, 3),
        "profile_json_kb": round(len(blob) / 1024, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    lines = [
        (f"time, median of {args.repeats}", f"{result['profile_s']:.3f} s"),
        ("peak allocated (tracemalloc)", f"{traced_mb:.1f} MB (the frame: {frame_mb:.0f} MB)"),
        ("peak RSS growth while profiling", f"{rss_growth:.1f} MB (before: {rss_before:.0f} MB)"),
        ("two halves + merge", f"{halves:.3f} s"),
        ("profile as JSON", f"{result['profile_json_kb']} KB"),
    ]
    print(f"profile_frame, {args.rows:,} rows x {df.shape[1]} columns (20 numeric, 5 categorical)")
    print("\n".join(f"  {label + ':':<33}{value}" for label, value in lines))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
