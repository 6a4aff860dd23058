"""Batch inference: chunked, parallel, resumable, recorded as a run; bad inputs get clear
errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
import ferryml.data
from ferryml.config import Settings
from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.serving.batch import run_batch

FEATURES = ["f0", "f1", "f2", "f3"]
URI = "models:/m@champion"


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of a job."""


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(3000, 4)), columns=FEATURES)
    frame.insert(0, "id", np.arange(3000))
    frame["city"] = rng.choice(["Lyon", "Oslo", "Quito"], size=3000)
    return frame


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_EXPERIMENT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = ferry.configure(home=tmp_path / "home")
    yield settings
    while ferry.active_run() is not None:
        ferry.end_run()
    ferry.configure(home=tmp_path / "home")  # closes the client and its journal


@pytest.fixture
def model(home: Settings, data: pd.DataFrame) -> LogisticRegression:
    fitted = LogisticRegression().fit(data[FEATURES], data["f0"] + data["f1"] > 0)
    with ferry.start_run():
        ferry.log_model(fitted, input_example=data[FEATURES].head(), registered_model_name="m")
    ferry.set_registered_model_alias("m", "champion", 1)
    return fitted


def expected(model: LogisticRegression, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(prediction=model.predict(frame[FEATURES]))


def test_a_parquet_batch_predicts_every_row_like_the_model_on_the_whole_input(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet(tmp_path / "in.parquet")
    progress: list[tuple[int, int]] = []
    result = run_batch(
        URI,
        tmp_path / "in.parquet",
        tmp_path / "out" / "scored.parquet",
        chunk_rows=400,
        workers=2,
        settings=home,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert (result.rows, result.chunks, result.resumed_chunks) == (3000, 8, 0)
    assert result.output == tmp_path / "out" / "scored.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(result.output), expected(model, data))
    done = [d for d, _ in progress]
    assert done == sorted(done) and progress[-1] == (3000, 3000)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scored.parquet"]


def test_a_csv_batch_writes_csv_or_parquet_by_the_output_extension(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_csv(tmp_path / "in.csv", index=False)
    progress: list[tuple[int, int]] = []
    result = run_batch(
        URI,
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        chunk_rows=700,
        workers=2,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert (result.rows, result.chunks) == (3000, 5)
    assert progress[-1] == (3000, 0)  # a CSV's row count is not known up front
    written = pd.read_csv(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(written, expected(model, pd.read_csv(tmp_path / "in.csv")))
    result = run_batch(URI, tmp_path / "in.csv", tmp_path / "out.parquet", workers=1)
    assert result.chunks == 1
    assert pd.read_parquet(tmp_path / "out.parquet")["prediction"].tolist() == (
        written["prediction"].tolist()
    )


def test_an_interrupted_job_resumes_from_the_parts_it_wrote(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet(tmp_path / "in.parquet")
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"

    def crash_when_all_predicted(done: int, total: int) -> None:
        if done == total:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_batch(
            URI, source, output, chunk_rows=500, workers=2, on_progress=crash_when_all_predicted
        )
    parts = tmp_path / "out.parquet.parts"
    assert sorted(p.name for p in parts.iterdir()) == [
        "manifest.json",
        *[f"part-{i:05d}.parquet" for i in range(6)],
    ]
    assert not output.exists()
    (parts / "part-00003.parquet").unlink()
    result = run_batch(URI, source, output, chunk_rows=500, workers=2)
    assert (result.chunks, result.resumed_chunks, result.rows) == (6, 5, 3000)
    pd.testing.assert_frame_equal(pd.read_parquet(output), expected(model, data))
    assert not parts.exists()
    failed = ferry.search_runs(filter_string="tags.`ferry.kind` = 'batch'", order_by="start_time")
    assert [r.info.status.value for r in failed] == ["FAILED", "FINISHED"]


def test_a_changed_input_or_chunk_size_starts_over(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    data.to_parquet(source)

    def crash(done: int, total: int) -> None:
        raise Interrupted

    def ctrl_c(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(URI, source, output, chunk_rows=500, workers=1, on_progress=ctrl_c)
    [killed] = ferry.search_runs(filter_string="tags.`ferry.kind` = 'batch'")
    assert killed.info.status.value == "KILLED"
    result = run_batch(URI, source, output, chunk_rows=600, workers=1)
    assert (result.chunks, result.resumed_chunks) == (5, 0)
    with pytest.raises(Interrupted):
        run_batch(URI, source, output, chunk_rows=500, workers=1, on_progress=crash)
    data.head(2000).to_parquet(source)
    result = run_batch(URI, source, output, chunk_rows=500, workers=1)
    assert (result.rows, result.chunks, result.resumed_chunks) == (2000, 4, 0)
    pd.testing.assert_frame_equal(pd.read_parquet(output), expected(model, data.head(2000)))


def test_the_job_is_recorded_as_a_run_with_its_params_metrics_and_data_version(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet(tmp_path / "in.parquet")
    version = ferryml.data.add("in.parquet", name="customers")
    result = run_batch(URI, "in.parquet", "out.parquet", chunk_rows=1000, workers=2)
    run = ferry.get_run(result.run_id)
    assert run.info.run_name == "batch m/1"
    assert run.info.status.value == "FINISHED"
    assert run.data.tags["ferry.kind"] == "batch"
    params = dict(run.data.params)
    assert params == {
        "model_uri": URI,
        "model_version": "m/1",
        "input": str(tmp_path / "in.parquet"),
        "input_digest": params["input_digest"],
        "output": str(tmp_path / "out.parquet"),
        "chunk_rows": "1000",
        "workers": "2",
    }
    assert len(params["input_digest"]) == 64
    metrics = run.data.metrics
    assert (metrics["rows"], metrics["chunks"], metrics["resumed_chunks"]) == (3000, 3, 0)
    assert metrics["seconds"] > 0
    assert metrics["rows_per_s"] == pytest.approx(3000 / metrics["seconds"])
    assert [(i.name, i.version, i.digest, i.context) for i in run.inputs] == [
        ("customers", "1", version.manifest_digest, "inference")
    ]


def test_an_input_changed_since_it_was_versioned_is_not_recorded_as_that_version(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet(tmp_path / "in.parquet")
    ferryml.data.add("in.parquet", name="customers")
    data.head(100).to_parquet(tmp_path / "in.parquet")
    result = run_batch(URI, "in.parquet", "out.parquet", workers=1)
    assert ferry.get_run(result.run_id).inputs == ()


def test_a_run_started_by_a_script_is_the_parent_of_the_batch_run(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet(tmp_path / "in.parquet")
    with ferry.start_run() as parent:
        result = run_batch(URI, "in.parquet", "out.parquet", workers=1)
    assert ferry.get_run(result.run_id).info.parent_run_id == parent.run_id


@pytest.mark.parametrize(
    ("source", "output", "error", "message", "runs"),
    [
        ("missing.parquet", "out.parquet", NotFound, "'missing.parquet' does not exist", []),
        ("in.txt", "out.parquet", InvalidArgument, "Input 'in.txt' has extension '.txt'", []),
        ("in.parquet", "out.json", InvalidArgument, "Output 'out.json' has extension '.json'", []),
        ("in.parquet", "in.parquet", InvalidArgument, "Output 'in.parquet' is the input", []),
        ("garbage.parquet", "out.parquet", InvalidArgument, "cannot be read as Parquet", []),
        ("empty.csv", "out.csv", InvalidArgument, "cannot be read as CSV", []),
        ("header.csv", "out.csv", InvalidArgument, "'header.csv' has no rows", []),
        ("none.parquet", "out.csv", InvalidArgument, "'none.parquet' has no rows", []),
        # found while predicting, so the run records the failure
        ("scored.parquet", "out.parquet", InvalidArgument, "has a column 'prediction'", ["FAILED"]),
        ("features.parquet", "out.parquet", InvalidArgument, "missing column 'f3'", ["FAILED"]),
    ],
)
def test_bad_inputs_get_errors_that_name_them(
    tmp_path: Path,
    home: Settings,
    model: LogisticRegression,
    data: pd.DataFrame,
    source: str,
    output: str,
    error: type[Exception],
    message: str,
    runs: list[str],
) -> None:
    data.to_parquet("in.parquet")
    Path("in.txt").write_text("f0\n1\n")
    Path("garbage.parquet").write_bytes(b"not parquet")
    Path("empty.csv").write_text("")
    Path("header.csv").write_text("f0,f1,f2,f3\n")
    data.assign(prediction=1).to_parquet("scored.parquet")
    data.drop(columns="f3").to_parquet("features.parquet")
    data.head(0).to_parquet("none.parquet")
    with pytest.raises(error, match=message):
        run_batch(URI, source, output, chunk_rows=1000, workers=2)
    recorded = ferry.search_runs(filter_string="tags.`ferry.kind` = 'batch'")
    assert [r.info.status.value for r in recorded] == runs


def test_csv_chunks_whose_column_types_differ_are_combined_or_rejected(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    counts = pd.Series(np.arange(3000), dtype="float64").where(lambda n: n < 2500)
    data.assign(count=counts).to_csv("in.csv", index=False)  # ints, then NaN from row 2500
    run_batch(URI, "in.csv", "out.parquet", chunk_rows=1000, workers=2)
    written = pd.read_parquet("out.parquet")
    pd.testing.assert_series_equal(written["count"], counts, check_names=False)
    data.assign(code=[1] * 1000 + ["x"] * 2000).to_csv("mixed.csv", index=False)
    with pytest.raises(InvalidArgument, match="types that do not combine"):
        run_batch(URI, "mixed.csv", "out.parquet", chunk_rows=1000, workers=2)
    assert sorted(p.name for p in tmp_path.glob("*out.parquet*")) == [
        "out.parquet",
        "out.parquet.parts",  # kept: a rerun with a larger chunk_rows starts over anyway
    ]


def test_an_unknown_model_or_alias_is_not_found(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet("in.parquet")
    with pytest.raises(NotFound, match="Registered model 'nope' not found"):
        run_batch("models:/nope@champion", "in.parquet", "out.parquet")
    with pytest.raises(NotFound, match="Model 'm' has no alias 'gold'"):
        run_batch("models:/m@gold", "in.parquet", "out.parquet")
    with pytest.raises(InvalidArgument, match="chunk_rows and workers must be at least 1"):
        run_batch(URI, "in.parquet", "out.parquet", chunk_rows=0)


def test_a_parts_folder_with_foreign_files_is_left_alone(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    data.to_parquet("in.parquet")
    Path("out.parquet.parts").mkdir()
    Path("out.parquet.parts/notes.txt").write_text("mine")
    with pytest.raises(Conflict, match=r"holds files that batch inference did not write"):
        run_batch(URI, "in.parquet", "out.parquet")
    assert Path("out.parquet.parts/notes.txt").read_text() == "mine"


@pytest.fixture
def predict_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ferry predict``, registered for this test unless the app has it already."""
    from ferryml.cli import _app, predict

    if not any(c.name == "predict" for c in _app.app.registered_commands):
        monkeypatch.setattr(_app.app, "registered_commands", [*_app.app.registered_commands])
        _app.app.command("predict")(predict.predict)


def test_ferry_predict_prints_a_summary_or_json_and_one_line_errors(
    tmp_path: Path,
    home: Settings,
    model: LogisticRegression,
    data: pd.DataFrame,
    predict_command: None,
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    data.to_parquet("in.parquet")
    code, out, _ = cli(
        "--home", str(home.home), "predict", URI, "in.parquet", "out.csv", "--chunk-rows", "1000"
    )
    assert code == 0
    run_id = ferry.search_runs()[0].info.run_id
    assert re.fullmatch(rf"3,000 rows -> out.csv in \d+\.\ds \(3 chunks\); run {run_id}\n", out)
    code, out, _ = cli(
        "--home",
        str(home.home),
        "predict",
        URI,
        "in.parquet",
        "out.parquet",
        "--workers",
        "2",
        "--json",
    )
    assert code == 0
    found = json.loads(out)
    assert (found["rows"], found["chunks"], found["output"]) == (3000, 1, "out.parquet")
    code, out, err = cli(
        "--home", str(home.home), "predict", "models:/nope@x", "in.parquet", "out.parquet"
    )
    assert (code, out) == (1, "")
    assert err == "error: Registered model 'nope' not found. See `ferry models list`.\n"


def test_a_failed_ferry_predict_removes_an_empty_parts_folder_or_says_the_rerun_resumes(
    tmp_path: Path,
    home: Settings,
    model: LogisticRegression,
    data: pd.DataFrame,
    predict_command: None,
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    data.drop(columns=["f3"]).to_parquet("broken.parquet")
    code, out, err = cli("--home", str(home.home), "predict", URI, "broken.parquet", "out.parquet")
    assert code != 0 and "f3" in err and not err.startswith("note:")
    assert not Path("out.parquet.parts").exists()  # no chunk was predicted: nothing to keep

    data.assign(code=[1] * 1000 + ["x"] * 2000).to_csv("mixed.csv", index=False)
    code, _, err = cli(
        "--home", str(home.home), "predict", URI, "mixed.csv", "out.parquet", "--chunk-rows", "1000"
    )
    assert code == 2  # the input's columns do not combine: the user's input to fix
    assert err.splitlines()[0] == (
        "note: 3 predicted chunks kept in out.parquet.parts; the same command resumes from "
        "them (delete the folder to start over)."
    )
    assert err.splitlines()[1].startswith("error: ")


# -- datasets larger than memory: folders and prefixes, here or on Dask ---------------------


def write_dataset(root: Path, data: pd.DataFrame) -> None:
    """``data`` hive-partitioned by date: three days, the last in two files."""
    days = {"2026-12-01": [data.iloc[:1000]], "2026-12-02": [data.iloc[1000:2000]]}
    days["2026-12-03"] = [data.iloc[2000:2600], data.iloc[2600:]]
    for day, frames in days.items():
        (root / f"date={day}").mkdir(parents=True)
        for i, frame in enumerate(frames):
            frame.to_parquet(root / f"date={day}" / f"part-{i}.parquet", index=False)


def test_a_dataset_is_predicted_batch_by_batch_into_a_file_or_a_folder_like_the_input(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    write_dataset(Path("log"), data)
    seen: list[int] = []
    result = run_batch(
        URI,
        "log",
        "out.parquet",
        chunk_rows=300,
        workers=1,
        on_progress=lambda done, total: seen.append(total - done),
    )
    assert (result.rows, result.chunks) == (3000, 12)  # 4+4+2+2 batches of <= 300 rows
    assert seen[-1] == 0 and seen == sorted(seen, reverse=True)
    got = pd.read_parquet("out.parquet").sort_values("id").reset_index(drop=True)
    want = expected(model, data).assign(date=pd.Series(dtype=object))
    assert (got["prediction"].to_numpy() == want["prediction"].to_numpy()).all()
    assert got["date"].value_counts().to_dict() == {
        "2026-12-01": 1000,
        "2026-12-02": 1000,
        "2026-12-03": 1000,
    }
    run_batch(URI, "log", "scored", chunk_rows=700, workers=2)
    files = sorted(p.relative_to("scored").as_posix() for p in Path("scored").rglob("*.parquet"))
    assert files[:3] == [
        "date=2026-12-01/part-0-00000.parquet",
        "date=2026-12-01/part-0-00001.parquet",
        "date=2026-12-02/part-0-00000.parquet",
    ]
    folder = pd.read_parquet("scored").sort_values("id").reset_index(drop=True)
    assert folder["prediction"].tolist() == got["prediction"].tolist()
    assert not Path("scored.parts").exists()


def test_dask_workers_predict_the_files_and_write_what_a_local_run_writes(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame, dask_client: Any
) -> None:
    write_dataset(Path("log"), data)
    local = run_batch(URI, "log", "local.parquet", chunk_rows=400, workers=1)
    remote = run_batch(URI, "log", "dask.parquet", chunk_rows=400, executor=dask_client)
    assert (remote.rows, remote.chunks) == (local.rows, local.chunks) == (3000, 9)
    pd.testing.assert_frame_equal(pd.read_parquet("dask.parquet"), pd.read_parquet("local.parquet"))
    # scoring a scored set again: the new predictions go beside the old ones
    run_batch(URI, "local.parquet", "again.parquet", column="again", workers=2)
    again = pd.read_parquet("again.parquet")
    assert again["again"].tolist() == again["prediction"].tolist()


def test_an_interrupted_dataset_job_resumes_from_its_parts(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    write_dataset(Path("log"), data)

    def crash(done: int, total: int) -> None:
        if done >= 1500:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_batch(URI, "log", "out.parquet", chunk_rows=500, workers=1, on_progress=crash)
    result = run_batch(URI, "log", "out.parquet", chunk_rows=500, workers=1)
    assert result.rows == 3000 and 3 <= result.resumed_chunks < result.chunks == 7
    assert len(pd.read_parquet("out.parquet")) == 3000


def test_bad_dataset_inputs_get_one_clear_line(
    tmp_path: Path, home: Settings, model: LogisticRegression, data: pd.DataFrame
) -> None:
    with pytest.raises(NotFound, match=r"Dataset 'absent' not found"):
        run_batch(URI, "absent", "out.parquet", executor="local")
    Path("notes").mkdir()
    Path("notes/a.parquet").write_text("f0,f1\n1,2\n")
    with pytest.raises(InvalidArgument, match=r"cannot be read as Parquet") as caught:
        run_batch(URI, "notes", "out.parquet")
    assert "\n" not in str(caught.value)
    Path("narrow").mkdir()
    data.drop(columns="f3").to_parquet("narrow/a.parquet")
    with pytest.raises(InvalidArgument, match=r"missing column 'f3'"):
        run_batch(URI, "narrow", "out.parquet", workers=1)
    Path("taken").mkdir()
    with pytest.raises(Conflict, match=r"Output folder 'taken' exists"):
        run_batch(URI, "narrow", "taken")
    with pytest.raises(InvalidArgument, match=r"Unknown executor 'nope': use local or dask"):
        run_batch(URI, "narrow", "out2.parquet", executor="nope")
