"""``ferry feedback import``: exit codes, exact messages, ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ferryml.config import Settings
from ferryml.predictions import load
from ferryml.serving.predlog import PredictionLog


def stores(settings: Settings) -> list[str]:
    return [
        "--home",
        str(settings.home),
        "--store",
        settings.store_url,
        "--artifacts",
        settings.artifacts_url,
    ]


@pytest.fixture
def labels(settings: Settings, tmp_path: Path) -> Path:
    with PredictionLog(settings) as log:
        ids = ["p1", "p2", "p3"]
        log.record("d", "primary", "m", 1, ids, pd.DataFrame({"x": [1, 2, 3]}), [0, 1, 0], 1.0)
    path = tmp_path / "labels.csv"
    pd.DataFrame({"prediction_id": ["p1", "p2", "p1", "zz"], "label": [1, 1, 0, 1]}).to_csv(
        path, index=False
    )
    return path


def test_import_prints_accepted_updated_and_unknown(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, labels: Path
) -> None:
    code, out, err = cli(*stores(settings), "feedback", "import", str(labels))
    assert (code, err) == (0, "")
    assert out == (
        "3 labels imported (1 replaced an earlier label), 1 unknown prediction ids.\nUnknown: zz\n"
    )
    assert load("d", settings=settings)["label"].tolist()[:2] == [0, 1]


def test_import_json_prints_the_report(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, labels: Path
) -> None:
    code, out, _ = cli(*stores(settings), "feedback", "import", str(labels), "--json")
    assert code == 0
    assert json.loads(out) == {"accepted": 3, "unknown_ids": ["zz"], "updated": 1}


def test_import_lists_at_most_ten_unknown_ids(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, labels: Path, tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    unknown = [f"u{i:02d}" for i in range(12)]
    pd.DataFrame({"prediction_id": ["p1", *unknown], "label": 1}).to_csv(path, index=False)
    code, out, _ = cli(*stores(settings), "feedback", "import", str(path))
    assert code == 0
    assert out.splitlines()[1] == f"Unknown: {', '.join(unknown[:10])} and 2 more"


def test_import_with_named_columns_from_parquet(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, labels: Path, tmp_path: Path
) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"request": ["p3"], "truth": ["spam"]}).to_parquet(path)
    code, out, _ = cli(
        *stores(settings),
        "feedback",
        "import",
        str(path),
        "--id-column",
        "request",
        "--label-column",
        "truth",
    )
    assert (code, out) == (
        0,
        "1 labels imported (0 replaced an earlier label), 0 unknown prediction ids.\n",
    )


def test_import_where_no_id_matches_exits_1(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, labels: Path, tmp_path: Path
) -> None:
    path = tmp_path / "stray.csv"
    pd.DataFrame({"prediction_id": ["q1", "q2"], "label": [1, 0]}).to_csv(path, index=False)
    code, out, err = cli(*stores(settings), "feedback", "import", str(path))
    assert code == 1
    assert out == "0 labels imported (0 replaced an earlier label), 2 unknown prediction ids.\n"
    assert err == (
        f"error: none of the 2 prediction ids in {path} matches a logged prediction (first: "
        "q1). Check --id-column, the store (--store), or wait for the servers to flush their "
        "logs.\n"
    )
    code, out, _ = cli(*stores(settings), "feedback", "import", str(path), "--json")
    assert code == 1 and json.loads(out)["unknown_ids"] == ["q1", "q2"]


def test_import_of_missing_columns_is_one_error_line(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"key": ["a"], "y": [1]}).to_csv(path, index=False)
    code, out, err = cli(*stores(settings), "feedback", "import", str(path))
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path} has no column 'prediction_id' (or 'id') or 'label'; its columns are "
        "'key', 'y'. Name the columns to use (id_column and label_column; in the CLI "
        "--id-column and --label-column).\n"
    )


def test_import_of_a_missing_file_is_one_error_line(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "nope.csv"
    code, _, err = cli(*stores(settings), "feedback", "import", str(path))
    assert (code, err) == (1, f"error: File '{path}' not found. Check the path.\n")


def test_import_without_a_file_is_bad_usage(
    cli: Callable[..., tuple[int, str, str]], settings: Settings
) -> None:
    code, _, err = cli(*stores(settings), "feedback", "import")
    assert code == 2
    assert err.splitlines()[0].startswith("Usage: ferry feedback import [OPTIONS]")
    assert err.splitlines()[-1] == "Error: Missing argument 'FILE'."


def test_feedback_help_names_the_command(
    cli: Callable[..., tuple[int, str, str]], settings: Settings
) -> None:
    code, out, _ = cli(*stores(settings), "feedback", "import", "--help")
    assert code == 0
    assert "--id-column" in out and "--label-column" in out and "--json" in out


def test_import_takes_an_id_column_when_there_is_no_prediction_id(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, labels: Path, tmp_path: Path
) -> None:
    path = tmp_path / "by_id.csv"
    pd.DataFrame({"id": ["p2", "p3"], "label": [0, 1]}).to_csv(path, index=False)
    code, out, err = cli(*stores(settings), "feedback", "import", str(path))
    assert (code, out, err) == (
        0,
        "2 labels imported (0 replaced an earlier label), 0 unknown prediction ids.\n",
        "",
    )
    assert load("d", settings=settings)["label"].tolist()[1:] == [0, 1]

    both = tmp_path / "both.csv"
    pd.DataFrame({"prediction_id": ["p1"], "id": ["row-7"], "label": [1]}).to_csv(both, index=False)
    code, out, _ = cli(*stores(settings), "feedback", "import", str(both), "--json")
    assert json.loads(out) == {"accepted": 1, "unknown_ids": [], "updated": 0}
