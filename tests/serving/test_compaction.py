"""Compaction of the prediction log: small per-flush partitions merged day by day, every
row kept exactly once, through a crash mid-compaction, beside readers and other
compactions, in the background of a server's log and from ``ferry predictions compact``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ferryml import predictions
from ferryml.config import Settings
from ferryml.serving._partitions import read_partitions
from ferryml.serving.predlog import PredictionLog, new_prediction_id
from ferryml.store.factory import open_artifact_store, open_prediction_store

DAY = 86_400.0
START = 1_796_083_200.0  # 2026-12-01T00:00:00Z


def log_flushes(settings: Settings, deployment: str, flushes: int = 12, rows: int = 25) -> None:
    """``flushes`` partitions of ``rows`` predictions, half on one day, half on the next."""
    with PredictionLog(settings, compact_every=None) as log:
        for i in range(flushes):
            x = np.arange(i * rows, (i + 1) * rows)
            frame = pd.DataFrame({"x": x, "score": x / 7, "plan": [f"p{v % 3}" for v in x]})
            ids = [new_prediction_id() for _ in x]
            when = START + (i >= flushes // 2) * DAY + i * 60
            log.record(deployment, "primary", "m", 1, ids, frame, x % 2, 1.5, time=when)
            log.flush()


def everything(settings: Settings, deployment: str) -> pd.DataFrame:
    frame = predictions.load(deployment, with_feedback=False, settings=settings)
    return frame.sort_values("id").reset_index(drop=True)


def partitions(settings: Settings, deployment: str) -> list[Any]:
    store = open_prediction_store(settings)
    try:
        return store.list_partitions(deployment)
    finally:
        store.close()


def test_compaction_merges_each_day_and_keeps_every_row_once(settings: Settings) -> None:
    log_flushes(settings, "churn")
    before, listed = everything(settings, "churn"), partitions(settings, "churn")
    assert len(listed) == 12 and len(before) == 300
    report = predictions.compact(settings, target_rows=10_000)
    assert (report.merged, report.written, report.rows) == (12, 2, 300)
    after = partitions(settings, "churn")
    assert [p.rows for p in after] == [150, 150]
    pd.testing.assert_frame_equal(everything(settings, "churn"), before)
    # a reader that listed the old partitions before the swap still reads them whole
    blobs = open_artifact_store(settings)
    old = read_partitions([blobs.get_bytes(p.digest) for p in listed])
    assert sorted(old["id"]) == sorted(before["id"])
    # feedback still finds a prediction in its compacted partition
    label = predictions.record_feedback([(before["id"][123], 1)], settings=settings)
    assert (label.accepted, label.unknown_ids) == (1, [])
    assert predictions.compact(settings).merged == 0  # nothing small is left to merge


def test_partitions_larger_than_half_the_target_or_alone_in_their_day_stay(
    sqlite_settings: Settings,
) -> None:
    log_flushes(sqlite_settings, "churn", flushes=6, rows=40)
    report = predictions.compact(sqlite_settings, "churn", target_rows=100)
    # each day holds 3 partitions of 40 rows: two merge (80 <= 100), the third stays
    assert [p.rows for p in partitions(sqlite_settings, "churn")] == [80, 40, 80, 40]
    assert report.written == 2
    assert len(everything(sqlite_settings, "churn")) == 240


def test_scan_reads_a_window_a_partition_at_a_time_with_the_rows_load_gives(
    sqlite_settings: Settings,
) -> None:
    log_flushes(sqlite_settings, "churn")
    window = {"since": "2026-12-01T00:02:00Z", "until": "2026-12-02T00:09:00Z"}
    frames = list(predictions.scan("churn", settings=sqlite_settings, **window))
    assert len(frames) == 7 and max(len(f) for f in frames) == 25  # a partition at a time
    whole = predictions.load("churn", with_feedback=False, settings=sqlite_settings, **window)
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)


def test_a_crash_mid_compaction_loses_nothing_and_the_next_one_finishes(
    settings: Settings,
) -> None:
    log_flushes(settings, "churn")
    before = everything(settings, "churn")
    # The process dies after writing the merged blob, before the index swaps it in.
    script = textwrap.dedent(
        f"""
        import os
        from ferryml.config import Settings
        from ferryml.serving import compaction
        from ferryml.store import sql_predictions

        def die(*args, **kwargs):
            os._exit(9)

        sql_predictions.SqlPredictionStore.replace_partitions = die
        settings = Settings.resolve(home={str(settings.home)!r}, store={settings.store_url!r},
                                    artifacts={settings.artifacts_url!r})
        compaction.compact(settings, target_rows=10_000)
        """
    )
    crashed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert crashed.returncode == 9, crashed.stderr.decode()
    assert len(partitions(settings, "churn")) == 12
    pd.testing.assert_frame_equal(everything(settings, "churn"), before)
    assert predictions.compact(settings, target_rows=10_000).written == 2
    pd.testing.assert_frame_equal(everything(settings, "churn"), before)


def test_a_server_log_compacts_its_old_partitions_in_the_background(
    sqlite_settings: Settings,
) -> None:
    from test_predlog import wait_for

    with PredictionLog(sqlite_settings, flush_interval=0.05, compact_every=0.3) as log:
        for i in range(10):
            x = np.arange(i * 5, i * 5 + 5)
            ids = [new_prediction_id() for _ in x]
            log.record("churn", "primary", "m", 1, ids, pd.DataFrame({"x": x}), x, 1.0)
            log.flush()
        assert wait_for(lambda: len(partitions(sqlite_settings, "churn")) == 1, 10)
    assert sorted(everything(sqlite_settings, "churn")["x"]) == list(range(50))


def test_ferry_predictions_compact_reports_or_names_a_bad_deployment(
    sqlite_settings: Settings, cli: Callable[..., Any]
) -> None:
    log_flushes(sqlite_settings, "churn", flushes=4, rows=5)
    home = ("--home", str(sqlite_settings.home))
    done = cli(*home, "predictions", "compact", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out) | {"seconds": 0} == {
        "merged": 4,
        "written": 2,
        "rows": 20,
        "lost_races": 0,
        "seconds": 0,
    }
    again = cli(*home, "predictions", "compact", "churn")
    assert again.code == 0 and again.out.startswith("Merged 0 partitions into 0 (0 rows)")
    unknown = cli(*home, "predictions", "compact", "chrun")
    assert unknown.code == 1
    assert unknown.err.strip() == (
        "error: No predictions logged for deployment 'chrun'; deployments with predictions: "
        "'churn'."
    )
    small = cli(*home, "predictions", "compact", "--target-rows", "1")
    assert small.code == 2 and "target-rows" in small.err
