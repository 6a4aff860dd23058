"""The prediction log: cheap records, background and final flushes, what a crash loses,
and the rows coming back typed, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml import predictions
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound, StoreUnavailable
from ferryml.serving import predlog
from ferryml.serving._frames import float_frame
from ferryml.serving.predlog import PredictionLog, new_prediction_id
from ferryml.store import sql_predictions
from ferryml.store.factory import open_artifact_store, open_prediction_store


def features(start: int, n: int) -> pd.DataFrame:
    """Row i carries x = i, a float, a string and a datetime derived from it."""
    values = np.arange(start, start + n)
    return pd.DataFrame(
        {
            "x": values,
            "score": values / 10,
            "plan": [f"p{v % 3}" for v in values],
            "seen": pd.to_datetime(values, unit="D"),
        }
    )


def rows_in(settings: Settings, deployment: str) -> int:
    try:
        return len(predictions.load(deployment, with_feedback=False, settings=settings))
    except NotFound:
        return 0


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_new_prediction_id_is_32_hex_characters_ordered_by_time() -> None:
    first = new_prediction_id()
    ms = int(first[:12], 16)
    assert len(first) == 32 and int(first, 16) >= 0
    assert abs(ms - time.time() * 1000) < 5_000
    later = [new_prediction_id() for _ in range(1000)]
    assert len(set(later)) == 1000
    assert all(int(p[:12], 16) >= ms for p in later)


def test_records_from_several_threads_load_back_with_types_and_values(
    settings: Settings,
) -> None:
    with PredictionLog(settings, flush_interval=60) as log:

        def serve(thread: int) -> None:
            for request in range(40):
                start = thread * 1000 + request * 3
                n = 1 + request % 3
                ids = [f"t{thread}-{start + i:05d}" for i in range(n)]
                log.record(
                    "churn",
                    "canary" if thread % 2 else "primary",
                    "churn",
                    1 + thread % 2,
                    ids,
                    features(start, n),
                    np.arange(start, start + n) * 2.0,
                    latency_ms=float(thread),
                    time=1_700_000_000 + start,
                )

        threads = [threading.Thread(target=serve, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        written = log.flush()
    frame = predictions.load("churn", settings=settings)
    expected = sum(1 + r % 3 for r in range(40)) * 6
    assert written == expected and len(frame) == expected
    assert list(frame.columns) == [
        "id",
        "time",
        "deployment",
        "route",
        "model",
        "version",
        "latency_ms",
        "request_id",
        "x",
        "score",
        "plan",
        "seen",
        "prediction",
        "label",
    ]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert frame["x"].dtype == np.int64 and frame["score"].dtype == np.float64
    assert pd.api.types.is_string_dtype(frame["plan"])
    assert pd.api.types.is_datetime64_dtype(frame["seen"])
    assert frame["version"].dtype == np.int64 and frame["latency_ms"].dtype == np.float64
    assert frame["time"].is_monotonic_increasing
    assert frame["id"].is_unique
    for row in frame.itertuples():
        thread = int(row.id[1 : row.id.index("-")])
        x = int(row.id.split("-")[1])
        assert row.x == x and row.score == x / 10 and row.plan == f"p{x % 3}"
        assert row.seen == pd.Timestamp(x, unit="D")
        assert row.prediction == x * 2.0
        assert row.route == ("canary" if thread % 2 else "primary")
        assert row.version == 1 + thread % 2 and row.latency_ms == float(thread)
        start = thread * 1000 + (x - thread * 1000) // 3 * 3
        assert row.time == pd.Timestamp(1_700_000_000 + start, unit="s", tz="UTC")
        assert row.deployment == "churn" and row.model == "churn"
    assert frame["label"].isna().all()


def test_a_request_time_is_kept_to_the_microsecond(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a"], features(0, 1), [1.0], 2.5, time=1.234567)
    frame = predictions.load("d", settings=settings)
    assert frame["time"][0] == pd.Timestamp("1970-01-01T00:00:01.234567Z")


def test_record_is_cheap_on_the_hot_path(sqlite_settings: Settings) -> None:
    frame = features(0, 1)
    log = PredictionLog(sqlite_settings)  # not opened: recording only appends
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        for _ in range(500):
            log.record("d", "primary", "m", 1, ["id"], frame, [0.5], 1.0)
        timings.append((time.perf_counter() - start) / 500)
    assert sorted(timings)[len(timings) // 2] < 50e-6
    assert log.pending_rows == 10_000


def test_background_flush_happens_within_the_flush_interval(settings: Settings) -> None:
    with PredictionLog(settings, flush_interval=0.2) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), [1, 2], 1.0)
        assert wait_for(lambda: rows_in(settings, "d") == 2, seconds=10)
        assert log.pending_rows == 0


def test_max_rows_starts_a_flush_before_the_interval(settings: Settings) -> None:
    with PredictionLog(settings, flush_interval=3600, max_rows=5) as log:
        log.record("d", "primary", "m", 1, list("abc"), features(0, 3), [1, 2, 3], 1.0)
        log.record("d", "primary", "m", 1, list("de"), features(3, 2), [4, 5], 1.0)
        assert wait_for(lambda: rows_in(settings, "d") == 5, seconds=10)


def test_close_flushes_everything_pending(settings: Settings) -> None:
    log = PredictionLog(settings, flush_interval=3600).open()
    log.record("d", "primary", "m", 1, ["a", "b", "c"], features(0, 3), [1, 2, 3], 1.0)
    log.close()
    log.close()  # idempotent
    assert rows_in(settings, "d") == 3


def test_each_deployment_gets_its_own_rows(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("a", "primary", "m", 1, ["a1"], features(0, 1), [1], 1.0)
        log.record("b", "primary", "m", 1, ["b1", "b2"], features(1, 2), [2, 3], 1.0)
    assert predictions.load("a", settings=settings)["id"].tolist() == ["a1"]
    assert predictions.load("b", settings=settings)["id"].tolist() == ["b1", "b2"]


def test_list_outputs_come_back_as_lists(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), np.eye(2), 1.0)
        log.record("d", "primary", "m", 1, ["c"], features(2, 1), [[0.25, 0.75]], 1.0)
    assert predictions.load("d", settings=settings)["prediction"].tolist() == [
        [1.0, 0.0],
        [0.0, 1.0],
        [0.25, 0.75],
    ]


def test_string_outputs_come_back_as_strings(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), ["yes", "no"], 1.0)
    assert predictions.load("d", settings=settings)["prediction"].tolist() == ["yes", "no"]


def test_a_frame_of_outputs_comes_back_as_one_mapping_per_row(settings: Settings) -> None:
    outputs = pd.DataFrame({"label": ["yes", "no"], "p": [0.9, 0.2]})
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), outputs, 1.0)
    assert predictions.load("d", settings=settings)["prediction"].tolist() == [
        {"label": "yes", "p": 0.9},
        {"label": "no", "p": 0.2},
    ]


def test_outputs_arrow_cannot_type_come_back_through_json(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), ["yes", 3], 1.0)
    assert predictions.load("d", settings=settings)["prediction"].tolist() == ["yes", 3]


def test_a_feature_arrow_cannot_type_comes_back_as_text(settings: Settings) -> None:
    mixed = pd.DataFrame({"v": pd.Series([1, "two"], dtype=object), "ok": [1.5, 2.5]})
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], mixed, [0, 1], 1.0)
    frame = predictions.load("d", settings=settings)
    assert frame["v"].tolist() == ["1", "two"]
    assert frame["ok"].tolist() == [1.5, 2.5]


def test_requests_with_different_features_share_one_frame(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a"], pd.DataFrame({"x": [1.0]}), [0], 1.0)
        log.record("d", "canary", "m", 2, ["b"], pd.DataFrame({"y": ["new"]}), [1], 1.0)
    frame = predictions.load("d", settings=settings)
    assert frame["x"].tolist()[0] == 1.0 and pd.isna(frame["x"][1])
    assert pd.isna(frame["y"][0]) and frame["y"][1] == "new"


def test_float_frames_of_many_requests_are_stored_as_typed_columns_with_missing_values(
    settings: Settings,
) -> None:
    with PredictionLog(settings) as log:
        for i, values in enumerate([[1.0, float("nan")], [2.0, 0.5], [float("nan"), -1.0]]):
            rows = float_frame(np.array([values]), ["x", "y"])
            log.record("d", "primary", "m", 1, [f"r{i}"], rows, [i], 1.0, 1.7e9 + i)
    frame = predictions.load("d", settings=settings)
    assert frame["id"].tolist() == ["r0", "r1", "r2"]
    assert frame["x"].tolist()[:2] == [1.0, 2.0] and pd.isna(frame["x"][2])
    assert pd.isna(frame["y"][0]) and frame["y"].tolist()[1:] == [0.5, -1.0]
    assert (frame["x"].dtype, frame["y"].dtype) == (np.float64, np.float64)
    index, blobs = open_prediction_store(settings), open_artifact_store(settings)
    try:
        (partition,) = index.search_partitions_by_id("r0", "r2")
        table = predlog.read_partition_table(blobs.get_bytes(partition.digest))
    finally:
        index.close()
    assert table.column("feature.x").null_count == 1  # missing, as pandas writes NaN


def test_flushes_with_different_features_and_types_load_as_one_frame(
    settings: Settings,
) -> None:
    with PredictionLog(settings, flush_interval=3600) as log:
        log.record("d", "primary", "m", 1, ["a"], pd.DataFrame({"x": [1]}), [0.5], 1.0, time=1)
        log.flush()
        log.record("d", "primary", "m", 1, ["b"], pd.DataFrame({"y": ["k"]}), [1.5], 1.0, time=2)
        log.flush()
        log.record("d", "primary", "m", 1, ["c"], pd.DataFrame({"x": ["s"]}), ["no"], 1.0, time=3)
        log.record("d", "primary", "m", 1, ["e"], pd.DataFrame({"x": [2]}), [7], 1.0, time=4)
    frame = predictions.load("d", settings=settings)
    assert frame["id"].tolist() == ["a", "b", "c", "e"]
    assert frame["prediction"].tolist() == [0.5, 1.5, "no", 7]
    assert [None if pd.isna(v) else v for v in frame["y"]] == [None, "k", None, None]
    assert frame["x"][0] == 1 and pd.isna(frame["x"][1]) and frame["x"][2] == "s"


def test_a_feature_named_like_a_log_column_is_prefixed(settings: Settings) -> None:
    clash = pd.DataFrame({"time": [3], "prediction": ["p"], "label": [1], "plain": [0]})
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a"], clash, [0.5], 1.0)
    frame = predictions.load("d", settings=settings)
    assert frame["feature.time"][0] == 3 and frame["feature.prediction"][0] == "p"
    assert frame["feature.label"][0] == 1 and frame["plain"][0] == 0
    assert frame["prediction"][0] == 0.5 and pd.isna(frame["label"][0])


def test_duplicate_feature_names_are_kept_apart(settings: Settings) -> None:
    twice = pd.DataFrame([[1, 2]], columns=["x", "x"])
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a"], twice, [0.5], 1.0)
    frame = predictions.load("d", settings=settings)
    assert (frame["x"][0], frame["x.1"][0]) == (1, 2)


def test_a_request_with_no_rows_records_nothing(sqlite_settings: Settings) -> None:
    log = PredictionLog(sqlite_settings)
    log.record("d", "primary", "m", 1, [], features(0, 0), [], 1.0)
    assert log.pending_rows == 0


def test_a_failed_flush_keeps_its_rows_for_the_next(tmp_path: Path, store_url: str) -> None:
    artifacts = tmp_path / "artifacts"
    settings = Settings(home=tmp_path / "home", store_url=store_url, artifacts_url=str(artifacts))
    with PredictionLog(settings, flush_interval=3600) as log:
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), [1, 2], 1.0)
        shutil.rmtree(artifacts)
        artifacts.write_text("not a folder")  # the artifact store breaks
        with pytest.raises(StoreUnavailable, match="Check the store is reachable, writable"):
            log.flush()
        assert log.pending_rows == 2
        artifacts.unlink()
        artifacts.mkdir()
        log.record("d", "primary", "m", 1, ["c"], features(2, 1), [3], 1.0)
        assert log.flush() == 3
    assert predictions.load("d", settings=settings)["id"].tolist() == ["a", "b", "c"]


def test_a_background_flush_failure_is_logged_once_and_retried(
    tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    artifacts = tmp_path / "artifacts"
    settings = Settings(home=tmp_path / "home", store_url=store_url, artifacts_url=str(artifacts))
    caplog.set_level(logging.WARNING, logger="ferryml.serving.predlog")
    with PredictionLog(settings, flush_interval=0.05) as log:
        shutil.rmtree(artifacts)
        artifacts.write_text("not a folder")
        log.record("d", "primary", "m", 1, ["a"], features(0, 1), [1], 1.0)
        assert wait_for(lambda: len(caplog.records) >= 1)
        failure = caplog.records[0].getMessage()
        assert re.fullmatch(
            r"Writing the prediction log failed; 1 rows are kept in memory and retried every "
            r"0\.05 s: .* in artifact store .* Check the store is reachable, writable and has "
            r"free space\.",
            failure,
        )
        log.record("d", "primary", "m", 1, ["b"], features(1, 1), [2], 1.0)
        assert wait_for(lambda: log.pending_rows == 2)
        artifacts.unlink()
        artifacts.mkdir()
        assert wait_for(lambda: rows_in(settings, "d") == 2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [failure, "Writing the prediction log works again."]


def test_closing_a_log_never_opened_still_writes_what_it_recorded(settings: Settings) -> None:
    log = PredictionLog(settings)
    log.record("d", "primary", "m", 1, ["a"], features(0, 1), [1], 1.0)
    log.close()
    assert rows_in(settings, "d") == 1


# -- bad input ----------------------------------------------------------------------------


def test_record_rejects_lengths_that_differ(sqlite_settings: Settings) -> None:
    log = PredictionLog(sqlite_settings)
    with pytest.raises(
        InvalidArgument,
        match=r"^ids, features and outputs must have one row per prediction; got 2 ids, "
        r"3 feature rows and 2 outputs\.$",
    ):
        log.record("d", "primary", "m", 1, ["a", "b"], features(0, 3), [1, 2], 1.0)
    with pytest.raises(InvalidArgument, match="got 1 ids, 1 feature rows and 0 outputs"):
        log.record("d", "primary", "m", 1, ["a"], features(0, 1), [], 1.0)


def test_record_rejects_features_that_are_not_a_dataframe(sqlite_settings: Settings) -> None:
    log = PredictionLog(sqlite_settings)
    with pytest.raises(InvalidArgument, match=r"^features must be a pandas DataFrame; got list\.$"):
        not_a_frame: Any = [[1, 2]]
        log.record("d", "primary", "m", 1, ["a"], not_a_frame, [1], 1.0)


@pytest.mark.parametrize(
    ("deployment", "route", "model"),
    [
        ("", "primary", "m"),
        ("d" * 257, "primary", "m"),
        ("d", "primary", ""),
        ("d", None, "m"),
        (7, "primary", "m"),
    ],
)
def test_record_rejects_bad_names(
    sqlite_settings: Settings, deployment: Any, route: Any, model: Any
) -> None:
    log = PredictionLog(sqlite_settings)
    with pytest.raises(
        InvalidArgument,
        match=r"^deployment and model must be names of 1 to 256 characters and route a "
        r"string; got deployment=",
    ):
        log.record(deployment, route, model, 1, ["a"], features(0, 1), [1], 1.0)
    assert log.pending_rows == 0


@pytest.mark.parametrize(
    ("version", "latency_ms", "time"),
    [("1", 1.0, None), (1.5, 1.0, None), (1, "fast", None), (1, 1.0, "now")],
)
def test_record_rejects_a_version_latency_or_time_that_is_not_a_number(
    sqlite_settings: Settings, version: Any, latency_ms: Any, time: Any
) -> None:
    log = PredictionLog(sqlite_settings)
    with pytest.raises(
        InvalidArgument,
        match=r"^version must be a whole number, latency_ms and time numbers \(time in "
        rf"seconds since the epoch\); got version={version!r}, latency_ms={latency_ms!r}, "
        rf"time={time!r}\.$",
    ):
        log.record("d", "primary", "m", version, ["a"], features(0, 1), [1], latency_ms, time)
    assert log.pending_rows == 0


def test_record_many_keeps_each_rows_latency_and_request_id(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        log.record("d", "primary", "m", 1, ["a"], features(0, 1), [0], 9.0, 1.7e9, "r0")
        log.record_many(
            "d", "primary", "m", 2, ["b", "c", "d"], features(1, 3), [1, 2, 3],
            np.array([1.5, 1.5, 4.0]), ["r1", "r1", None], time=1_700_000_000.5,
        )  # fmt: skip
    frame = predictions.load("d", with_feedback=False, settings=settings)
    assert frame["id"].tolist() == ["a", "b", "c", "d"]
    assert frame["x"].tolist() == [0, 1, 2, 3]
    assert frame["prediction"].tolist() == [0, 1, 2, 3]
    assert frame["version"].tolist() == [1, 2, 2, 2]
    assert frame["latency_ms"].tolist() == [9.0, 1.5, 1.5, 4.0]
    assert frame["request_id"].tolist()[:3] == ["r0", "r1", "r1"]
    assert pd.isna(frame["request_id"][3])
    assert frame["time"][3] == pd.Timestamp("2023-11-14T22:13:20.5Z")


def test_record_many_rejects_latencies_or_request_ids_not_one_a_row(
    sqlite_settings: Settings,
) -> None:
    log = PredictionLog(sqlite_settings)
    with pytest.raises(
        InvalidArgument,
        match=r"^latency_ms and request_ids must have one value a row; got 1 and 2 for 2 rows\.$",
    ):
        log.record_many("d", "primary", "m", 1, ["a", "b"], features(0, 2), [1, 2], [1.0],
                        ["r", "r"])  # fmt: skip
    with pytest.raises(InvalidArgument, match="got 2 and 1 for 2 rows"):
        log.record_many("d", "primary", "m", 1, ["a", "b"], features(0, 2), [1, 2], [1.0, 2.0],
                        ["r"])  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"^version must be a whole number"):
        fast: Any = ["fast"]
        log.record_many("d", "primary", "m", 1, ["a"], features(0, 1), [1], fast, ["r"])
    with pytest.raises(InvalidArgument, match=r"^ids, features and outputs must have one row"):
        log.record_many("d", "primary", "m", 1, ["a"], features(0, 2), [1], [1.0], ["r"])
    assert log.pending_rows == 0


def test_record_takes_numpy_numbers(settings: Settings) -> None:
    with PredictionLog(settings) as log:
        version: Any = np.int64(3)
        latency: Any = np.float32(2)
        log.record("d", "primary", "m", version, ["a"], features(0, 1), [1], latency)
    frame = predictions.load("d", settings=settings)
    assert (frame["version"][0], frame["latency_ms"][0]) == (3, 2.0)


def test_a_request_that_cannot_be_stored_is_dropped_without_blocking_others(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ferryml.serving.predlog")
    with PredictionLog(settings, flush_interval=3600) as log:
        log.record("d", "primary", "m", 1, ["a"], features(0, 1), [1], 1.0, time=10)
        log.record("d", "primary", "m", 1, ["bad"], features(1, 1), [2], 1.0, time=1e300)
        log.record("d", "primary", "m", 1, ["c"], features(2, 1), [3], 1.0, time=20)
        log.flush()
        assert log.pending_rows == 0
    assert predictions.load("d", settings=settings)["id"].tolist() == ["a", "c"]
    assert [r.getMessage() for r in caplog.records] == [
        "Dropping 1 predictions of deployment 'd' that cannot be stored as Parquet"
    ]


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_flush_interval_must_be_positive(sqlite_settings: Settings, interval: Any) -> None:
    with pytest.raises(
        InvalidArgument, match=r"^flush_interval must be a positive number of seconds; got "
    ):
        PredictionLog(sqlite_settings, flush_interval=interval)


@pytest.mark.parametrize("max_rows", [0, -5, 2.5, True])
def test_max_rows_must_be_a_whole_number(sqlite_settings: Settings, max_rows: Any) -> None:
    with pytest.raises(
        InvalidArgument, match=rf"^max_rows must be a whole number >= 1; got {max_rows!r}\.$"
    ):
        PredictionLog(sqlite_settings, max_rows=max_rows)


def test_the_constructor_does_no_io(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = Settings(
        home=blocker / "home",
        store_url=f"sqlite:///{blocker}/ferry.db",
        artifacts_url=str(blocker / "artifacts"),
    )
    log = PredictionLog(settings)
    log.record("d", "primary", "m", 1, ["a"], features(0, 1), [1], 1.0)
    with pytest.raises(StoreUnavailable, match="Cannot create the store folder"):
        log.open()


def test_flush_before_open_is_refused(sqlite_settings: Settings) -> None:
    with pytest.raises(
        StoreUnavailable, match=r"^The prediction log is not open; call open\(\) first\.$"
    ):
        PredictionLog(sqlite_settings).flush()


def test_record_and_open_after_close_are_refused(sqlite_settings: Settings) -> None:
    log = PredictionLog(sqlite_settings).open()
    log.close()
    message = r"^This prediction log is closed; create a new PredictionLog\.$"
    with pytest.raises(StoreUnavailable, match=message):
        log.record("d", "primary", "m", 1, ["a"], features(0, 1), [1], 1.0)
    with pytest.raises(StoreUnavailable, match=message):
        log.open()


def test_opening_twice_is_harmless(sqlite_settings: Settings) -> None:
    log = PredictionLog(sqlite_settings)
    assert log.open() is log.open()
    log.close()


# -- crashes and stops, in a real child process -------------------------------------------

CHILD = """
import json, signal, sys, time
import numpy as np, pandas as pd
from ferryml.config import Settings
from ferryml.serving._frames import float_frame
from ferryml.serving.predlog import PredictionLog

args = json.loads(sys.argv[1])
settings = Settings(home=args["home"], store_url=args["store_url"],
                    artifacts_url=args["artifacts_url"])
if args["sigterm_exits"]:  # as a server does: SIGTERM starts a graceful stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
log = PredictionLog(settings, flush_interval=args["interval"])
log.open(background=args.get("background", False))

def record(first, n):
    if args.get("many"):  # as a server batching its requests logs them: a batch at a time
        for i in range(first, first + n, 4):
            rows = range(i, min(i + 4, first + n))
            values = np.array([[r, r / 3] for r in rows], dtype=float)
            log.record_many("d", "primary", "m", 1, [f"id{r:06d}" for r in rows],
                            float_frame(values, ["x", "third"]), [float(r) for r in rows],
                            [r / 10 for r in rows], [f"req{r}" for r in rows])
        return
    for i in range(first, first + n):
        if args.get("floats"):  # as the server builds them from JSON records
            rows = float_frame(np.array([[i, i / 3]]), ["x", "third"])
        else:
            rows = pd.DataFrame({"x": [i]})
        log.record("d", "primary", "m", 1, [f"id{i:06d}"], rows, [float(i)], 1.0)

record(0, args["flushed"])
if args["flushed"]:
    log.flush()
print("flushed", flush=True)
record(args["flushed"], args["more"])
print("recorded", flush=True)
while True:
    time.sleep(0.05)
"""


def start_child(settings: Settings, **options: Any) -> subprocess.Popen[str]:
    args = {
        "home": str(settings.home),
        "store_url": settings.store_url,
        "artifacts_url": settings.artifacts_url,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(args | options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    for expected in ("flushed", "recorded"):
        line = child.stdout.readline().strip()
        if line != expected:
            child.kill()
            _, err = child.communicate()
            child.__exit__(None, None, None)
            raise AssertionError(f"the child printed {line!r}, not {expected!r}: {err}")
    return child


def logged_ids(settings: Settings) -> list[str]:
    try:
        return predictions.load("d", with_feedback=False, settings=settings)["id"].tolist()
    except NotFound:
        return []


@pytest.mark.e2e
def test_sigkill_loses_nothing_flushed(settings: Settings) -> None:
    with start_child(settings, interval=0.2, flushed=300, more=200, sigterm_exits=False) as child:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    ids = logged_ids(settings)
    assert ids[:300] == [f"id{i:06d}" for i in range(300)]  # every flushed row, in order
    assert set(ids) <= {f"id{i:06d}" for i in range(500)}  # at most the tail went missing


@pytest.mark.e2e
def test_sigkill_after_a_background_flush_loses_nothing(settings: Settings) -> None:
    with start_child(settings, interval=0.2, flushed=100, more=150, sigterm_exits=False) as child:
        try:
            # Rows recorded more than a flush interval ago are written by the flusher alone.
            assert wait_for(lambda: len(logged_ids(settings)) == 250, seconds=10)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    assert logged_ids(settings) == [f"id{i:06d}" for i in range(250)]


def replayed_after_a_sigkill(settings: Settings, **options: Any) -> pd.DataFrame:
    """The rows of a child killed with most of its records in its write-ahead file alone,
    once the next log to open has replayed them."""
    with start_child(settings, interval=3600, sigterm_exits=False, **options) as child:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with PredictionLog(settings):
        pass  # opening replays the dead process's write-ahead file
    return predictions.load("d", with_feedback=False, settings=settings)


@pytest.mark.e2e
def test_float_frames_written_ahead_come_back_whole_after_a_sigkill(settings: Settings) -> None:
    frame = replayed_after_a_sigkill(settings, flushed=3, more=40, floats=True)
    assert frame["id"].tolist() == [f"id{i:06d}" for i in range(43)]
    assert frame["x"].tolist() == [float(i) for i in range(43)]
    assert frame["third"].tolist() == [i / 3 for i in range(43)]
    assert frame["x"].dtype == np.float64


@pytest.mark.e2e
def test_batches_written_ahead_come_back_row_by_row_after_a_sigkill(settings: Settings) -> None:
    frame = replayed_after_a_sigkill(settings, flushed=8, more=42, many=True)
    assert frame["id"].tolist() == [f"id{i:06d}" for i in range(50)]
    assert frame["third"].tolist() == [i / 3 for i in range(50)]
    assert frame["latency_ms"].tolist() == [i / 10 for i in range(50)]
    assert frame["request_id"].tolist() == [f"req{i}" for i in range(50)]


@pytest.mark.e2e
def test_sigterm_flushes_everything(settings: Settings) -> None:
    with start_child(settings, interval=3600, flushed=10, more=90, sigterm_exits=True) as child:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
    assert logged_ids(settings) == [f"id{i:06d}" for i in range(100)]


def test_a_file_whose_rows_were_stored_before_the_kill_is_not_stored_again(
    sqlite_settings: Settings,
) -> None:
    log = PredictionLog(sqlite_settings, flush_interval=3600).open()
    log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), [1, 2], 1.0)
    (written,) = (sqlite_settings.home / "predictions").glob("*.predwal")
    left = written.read_bytes()  # what a kill between the flush and the removal leaves
    log.record("d", "primary", "m", 1, ["c"], features(2, 1), [3], 1.0)
    log.close()
    assert not written.exists()
    # A torn record after it, as a kill in the middle of a write leaves.
    written.write_bytes(left + left[:9])
    with PredictionLog(sqlite_settings) as again:
        assert again.recover() == 0  # open() found the file; nothing is left
    assert logged_ids(sqlite_settings) == ["a", "b", "c"]
    assert not written.exists()


def test_modules_list_their_public_names() -> None:
    for module in (predlog, predictions, sql_predictions):
        assert module.__all__
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_a_log_opened_in_the_background_stores_what_it_recorded_before(
    sqlite_settings: Settings,
) -> None:
    log = PredictionLog(sqlite_settings, flush_interval=3600).open(background=True)
    log.record("d", "primary", "m", 1, ["a", "b"], features(0, 2), [1, 2], 1.0)
    # A flush asked before the flusher opened the stores (feedback for the first answers)
    # opens them itself.
    assert log.flush() == 2
    stored = predictions.load("d", with_feedback=False, settings=sqlite_settings)
    assert stored["id"].tolist() == ["a", "b"]
    assert stored["x"].tolist() == [0, 1]
    log.record("d", "primary", "m", 1, ["c"], features(2, 1), [3], 1.0)
    log.close()  # stores what is pending
    stored = predictions.load("d", with_feedback=False, settings=sqlite_settings)
    assert stored["id"].tolist() == ["a", "b", "c"]


def test_a_log_opened_in_the_background_and_closed_unused_leaves_nothing(
    sqlite_settings: Settings,
) -> None:
    PredictionLog(sqlite_settings, flush_interval=3600).open(background=True).close()
    assert list((sqlite_settings.home / "predictions").iterdir()) == []


@pytest.mark.e2e
def test_sigkill_before_the_stores_opened_in_the_background_loses_nothing(
    settings: Settings,
) -> None:
    options = {"interval": 3600, "flushed": 0, "more": 50, "background": True}
    with start_child(settings, sigterm_exits=False, **options) as child:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert logged_ids(settings) == []  # nothing stored: the stores never opened
    PredictionLog(settings).open().close()  # the next process stores what was written ahead
    assert logged_ids(settings) == [f"id{i:06d}" for i in range(50)]
