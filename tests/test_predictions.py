"""Loading logged predictions by window, and joining feedback labels to them by id, on
SQLite and PostgreSQL; every bad input with its message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ferryml import predictions
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.predictions import FeedbackReport, import_feedback, load, record_feedback
from ferryml.serving.predlog import PredictionLog, new_prediction_id

T0 = 1_717_200_000  # 2024-06-01T00:00:00Z


def log_predictions(
    settings: Settings, deployment: str, ids: list[str], *, start: float = T0, step: float = 10
) -> None:
    """One 1-row request per id, ``step`` seconds apart from ``start``."""
    with PredictionLog(settings) as log:
        for i, pid in enumerate(ids):
            log.record(
                deployment,
                "primary",
                "m",
                1,
                [pid],
                pd.DataFrame({"x": [i]}),
                [i * 0.1],
                1.0,
                time=start + i * step,
            )


@pytest.fixture
def logged(settings: Settings) -> list[str]:
    ids = [new_prediction_id() for _ in range(4)]
    log_predictions(settings, "churn", ids)
    return ids


def test_feedback_joins_labels_to_predictions_by_id(settings: Settings, logged: list[str]) -> None:
    report = record_feedback([(logged[0], 1), (logged[2], 0)], settings=settings)
    assert report == FeedbackReport(accepted=2, unknown_ids=[], updated=0)
    frame = load("churn", settings=settings)
    assert frame["id"].tolist() == logged
    assert frame["label"][0] == 1 and frame["label"][2] == 0
    assert frame["label"].isna().tolist() == [False, True, False, True]


def test_unknown_ids_are_reported_and_not_stored(settings: Settings, logged: list[str]) -> None:
    report = record_feedback(
        [("never-served", 1), (logged[1], "yes"), ("also-unknown", 0), ("never-served", 0)],
        settings=settings,
    )
    assert report == FeedbackReport(
        accepted=1, unknown_ids=["never-served", "also-unknown"], updated=0
    )
    assert load("churn", settings=settings)["label"].tolist()[1] == "yes"
    assert record_feedback([("never-served", 1)], settings=settings).unknown_ids == ["never-served"]


def test_the_last_label_of_an_id_wins_and_counts_as_updated(
    settings: Settings, logged: list[str]
) -> None:
    first = record_feedback([(logged[0], 0), (logged[0], 1)], settings=settings)
    assert first == FeedbackReport(accepted=2, unknown_ids=[], updated=1)
    second = record_feedback([(logged[0], 2), (logged[1], 5)], settings=settings)
    assert second == FeedbackReport(accepted=2, unknown_ids=[], updated=1)
    assert load("churn", settings=settings)["label"].tolist()[:2] == [2, 5]


def test_feedback_accepts_mappings_and_any_json_label(
    settings: Settings, logged: list[str]
) -> None:
    items: list[dict[str, Any]] = [
        {"prediction_id": logged[0], "label": [1, 2]},
        {"prediction_id": logged[1], "label": np.int64(3)},
        {"prediction_id": logged[2], "label": {"class": "a"}},
        {"prediction_id": logged[3], "label": True},
    ]
    report = record_feedback(items, settings=settings)
    assert report.accepted == 4
    assert load("churn", settings=settings)["label"].tolist() == [[1, 2], 3, {"class": "a"}, True]


def test_feedback_finds_predictions_across_deployments_and_partitions(
    settings: Settings,
) -> None:
    a = [new_prediction_id() for _ in range(3)]
    b = [new_prediction_id() for _ in range(3)]
    log_predictions(settings, "a", a)
    log_predictions(settings, "b", b)
    report = record_feedback([(a[1], "x"), (b[2], "y"), (b[0], "z")], settings=settings)
    assert report == FeedbackReport(accepted=3, unknown_ids=[], updated=0)
    assert load("a", settings=settings)["label"].tolist() == [None, "x", None]
    assert load("b", settings=settings)["label"].tolist() == ["z", None, "y"]


def test_feedback_sees_a_prediction_only_once_it_is_flushed(settings: Settings) -> None:
    pid = new_prediction_id()
    with PredictionLog(settings, flush_interval=3600) as log:
        log.record("d", "primary", "m", 1, [pid], pd.DataFrame({"x": [1]}), [1], 1.0)
        assert record_feedback([(pid, 1)], settings=settings).unknown_ids == [pid]
        log.flush()
        assert record_feedback([(pid, 1)], settings=settings).accepted == 1


def test_no_feedback_is_an_empty_report(settings: Settings) -> None:
    assert record_feedback([], settings=settings) == FeedbackReport(0, [], 0)


def test_feedback_uses_the_resolved_settings_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    log_predictions(Settings.resolve(), "d", ["one"])
    assert record_feedback([("one", 1)]).accepted == 1
    assert load("d")["label"].tolist() == [1]


# -- load ---------------------------------------------------------------------------------


def test_since_and_until_select_a_window(settings: Settings, logged: list[str]) -> None:
    # logged at T0, T0+10 s, T0+20 s and T0+30 s
    window = load(
        "churn",
        since=dt.datetime(2024, 6, 1, 0, 0, 10, tzinfo=dt.UTC),
        until="2024-06-01T00:00:30Z",
        settings=settings,
    )
    assert window["id"].tolist() == logged[1:3]  # since inclusive, until exclusive
    assert (
        load("churn", since="2024-06-01T00:00:11", settings=settings)["id"].tolist() == (logged[2:])
    )
    assert (
        load("churn", until=dt.datetime(2024, 6, 1, 0, 0, 10), settings=settings)["id"].tolist()
        == logged[:1]
    )
    other_zone = dt.timezone(dt.timedelta(hours=2))
    assert (
        load(
            "churn", since=dt.datetime(2024, 6, 1, 2, 0, 20, tzinfo=other_zone), settings=settings
        )["id"].tolist()
        == logged[2:]
    )


def test_a_window_spanning_many_flushes_keeps_time_order(settings: Settings) -> None:
    first = [f"a{i}" for i in range(3)]
    later = [f"b{i}" for i in range(3)]
    log_predictions(settings, "d", later, start=T0 + 100)
    log_predictions(settings, "d", first, start=T0)
    frame = load("d", since="2024-06-01T00:00:10Z", until="2024-06-01T00:02:01Z", settings=settings)
    assert frame["id"].tolist() == ["a1", "a2", "b0", "b1", "b2"]


def test_an_empty_window_is_an_empty_frame_with_the_log_columns(
    settings: Settings, logged: list[str]
) -> None:
    frame = load("churn", since="2030-01-01", settings=settings)
    assert len(frame) == 0
    assert list(frame.columns) == [
        "id",
        "time",
        "deployment",
        "route",
        "model",
        "version",
        "latency_ms",
        "request_id",
        "prediction",
        "label",
    ]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"


def test_load_without_feedback_has_no_label_column(settings: Settings, logged: list[str]) -> None:
    record_feedback([(logged[0], 1)], settings=settings)
    frame = load("churn", with_feedback=False, settings=settings)
    assert "label" not in frame.columns and len(frame) == 4


def test_load_of_a_deployment_without_predictions_is_not_found(
    settings: Settings,
) -> None:
    with pytest.raises(
        NotFound,
        match=r"^No predictions logged for deployment 'churn'\. "
        r"No deployment has logged predictions yet\.$",
    ):
        load("churn", settings=settings)
    log_predictions(settings, "fraud", ["x"])
    with pytest.raises(
        NotFound,
        match=r"^No predictions logged for deployment 'churn'\. "
        r"Deployments with predictions: 'fraud'\.$",
    ):
        load("churn", settings=settings)


@pytest.mark.parametrize("deployment", ["", None, 3])
def test_load_rejects_a_deployment_that_is_not_a_name(settings: Settings, deployment: Any) -> None:
    with pytest.raises(
        InvalidArgument, match=rf"^deployment must be a deployment's name; got {deployment!r}\.$"
    ):
        load(deployment, settings=settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", r"^since='yesterday' is not a time; use an ISO 8601 string such as "),
        ("", r"^since='' is not a time; use an ISO 8601 string"),
        (
            12,
            r"^since must be a datetime or an ISO 8601 string such as "
            r"'2024-06-01T12:00:00Z'; got int 12\.$",
        ),
    ],
)
def test_load_rejects_a_since_that_is_not_a_time(
    settings: Settings, value: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load("churn", since=value, settings=settings)


def test_load_rejects_since_after_until(settings: Settings) -> None:
    with pytest.raises(
        InvalidArgument,
        match=r"^since \(2024-06-02T00:00:00\+00:00\) is after until "
        r"\(2024-06-01T00:00:00\+00:00\)\.$",
    ):
        load("churn", since="2024-06-02", until="2024-06-01", settings=settings)


# -- bad feedback ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            "abc",
            r"^Feedback must be a list of \(prediction_id, label\) pairs or of "
            r"\{'prediction_id': \.\.\., 'label': \.\.\.\} mappings; got str\.$",
        ),
        ({"prediction_id": "a", "label": 1}, r"mappings; got dict\.$"),
        (5, r"mappings; got int\.$"),
        (
            [("a", 1, 2)],
            r"^Feedback item 0 is \('a', 1, 2\); give a \(prediction_id, label\) "
            r"pair or a mapping with keys prediction_id and label\.$",
        ),
        (
            [("a", 1), {"label": 1}],
            r"^Feedback item 1 has no 'prediction_id': \{'label': 1\}\. "
            r"Give both prediction_id and label\.$",
        ),
        ([{"id": "a"}], r"^Feedback item 0 has no 'prediction_id' or 'label'"),
        (
            [(7, 1)],
            r"^Feedback item 0 has prediction_id 7; ids are non-empty strings, as the "
            r"server returned them\.$",
        ),
        ([("", 1)], r"^Feedback item 0 has prediction_id ''; ids are non-empty strings"),
        (
            [("a", None)],
            r"^Feedback item 0 \(prediction_id 'a'\) has no label; give a value, "
            r"or leave the item out until the label is known\.$",
        ),
        ([("a", float("nan"))], r"^Feedback item 0 \(prediction_id 'a'\) has no label"),
        (
            [("a", object)],
            r"^Feedback item 0 \(prediction_id 'a'\) has label <class 'object'>, "
            r"which is not a JSON value \(.*\); use a number, string, bool or list\.$",
        ),
        ([("a", [1.0, float("inf")])], r"has label \[1\.0, inf\], which is not a JSON value"),
    ],
)
def test_record_feedback_rejects_malformed_items(
    settings: Settings, items: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        record_feedback(items, settings=settings)


# -- import ---------------------------------------------------------------------------------


def test_import_feedback_from_csv(settings: Settings, tmp_path: Path) -> None:
    ids = ["0123", "0456", "789"]  # leading zeros: ids must stay text
    log_predictions(settings, "d", ids)
    path = tmp_path / "labels.csv"
    pd.DataFrame({"prediction_id": ids + ["0999"], "label": [1, 0, 1, 1]}).to_csv(path, index=False)
    report = import_feedback(path, settings=settings)
    assert report == FeedbackReport(accepted=3, unknown_ids=["0999"], updated=0)
    assert load("d", settings=settings)["label"].tolist() == [1, 0, 1]


def test_import_feedback_from_parquet_with_named_columns(
    settings: Settings, tmp_path: Path
) -> None:
    ids = [new_prediction_id() for _ in range(3)]
    log_predictions(settings, "d", ids)
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"request": ids, "truth": ["a", "b", "a"], "note": [1, 2, 3]}).to_parquet(path)
    report = import_feedback(path, id_column="request", label_column="truth", settings=settings)
    assert report == FeedbackReport(accepted=3, unknown_ids=[], updated=0)
    again = import_feedback(path, id_column="request", label_column="truth", settings=settings)
    assert again == FeedbackReport(accepted=3, unknown_ids=[], updated=3)
    assert load("d", settings=settings)["label"].tolist() == ["a", "b", "a"]


def test_import_names_the_missing_columns_and_the_present_ones(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"key": ["a"], "truth": [1]}).to_csv(path, index=False)
    with pytest.raises(
        InvalidArgument,
        match=rf"^{path} has no column 'prediction_id' \(or 'id'\) or 'label'; its columns are "
        r"'key', 'truth'\. Name the columns to use \(id_column and label_column; in the CLI "
        r"--id-column and --label-column\)\.$",
    ):
        import_feedback(path, settings=settings)
    with pytest.raises(InvalidArgument, match=rf"^{path} has no column 'label'; its columns"):
        import_feedback(path, id_column="key", settings=settings)


def test_import_rejects_rows_without_an_id_or_a_label(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\na,1\n,0\nc,\n")
    with pytest.raises(
        InvalidArgument,
        match=rf"^{path}: 1 rows have no 'prediction_id' \(first at line 3\)\. "
        r"Fill them in or drop them\.$",
    ):
        import_feedback(path, settings=settings)
    path.write_text("prediction_id,label\na,1\nb,\nc,\n")
    with pytest.raises(
        InvalidArgument,
        match=rf"^{path}: 2 rows have no 'label' \(first at line 3, id 'b'\)\. "
        r"Fill them in or drop them\.$",
    ):
        import_feedback(path, settings=settings)


def test_import_from_parquet_names_the_row_without_a_label(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"prediction_id": ["a", "b"], "label": [1.0, None]}).to_parquet(path)
    with pytest.raises(
        InvalidArgument,
        match=rf"^{path}: 1 rows have no 'label' \(first at row 2, id 'b'\)\. "
        r"Fill them in or drop them\.$",
    ):
        import_feedback(path, settings=settings)


def test_import_rejects_a_file_that_is_not_csv_or_parquet(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "labels.json"
    path.write_text("[]")
    with pytest.raises(
        InvalidArgument,
        match=rf"^{path} is neither CSV nor Parquet; give a file ending in \.csv or \.parquet\.$",
    ):
        import_feedback(path, settings=settings)


def test_import_of_a_missing_file_is_not_found(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(NotFound, match=rf"^File '{path}' not found\. Check the path\.$"):
        import_feedback(path, settings=settings)


def test_import_rejects_a_file_that_cannot_be_read(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "labels.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidArgument, match=rf"^{broken} cannot be read as Parquet: "):
        import_feedback(broken, settings=settings)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidArgument, match=rf"^{empty} cannot be read as CSV: "):
        import_feedback(empty, settings=settings)


def test_an_import_with_a_header_only_is_an_empty_report(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\n")
    assert import_feedback(path, settings=settings) == FeedbackReport(0, [], 0)


def test_module_lists_its_public_names() -> None:
    assert sorted(predictions.__all__) == [
        "CompactionReport",
        "FeedbackReport",
        "compact",
        "import_feedback",
        "load",
        "record_feedback",
        "scan",
    ]
