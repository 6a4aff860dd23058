"""Damaged data files under hypothesis: truncated or corrupt Parquet and CSV, other
encodings, huge lines, given to ``ferry data add``, ``ferry data validate``, ``ferry
predict`` and ``ferry feedback import``. Each either works or exits 1 or 2 with one line
that starts ``error:``; none shows a traceback or an "unexpected" error."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

import ferryml as ferry

ROWS = 20


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(ROWS)],
            "x": rng.normal(size=ROWS),
            "y": rng.normal(size=ROWS),
            "label": rng.integers(0, 2, size=ROWS),
            "city": rng.choice(["Lyon", "Zürich", "Søborg", "北京"], size=ROWS),
        }
    )


FRAME = _frame()
CSV = FRAME.to_csv(index=False).encode()
_buffer = io.BytesIO()
FRAME.to_parquet(_buffer, index=False)
PARQUET = _buffer.getvalue()
_buffer = io.BytesIO()
FRAME.to_parquet(_buffer, index=False, compression=None)
# text that is not UTF-8, which pandas reads lazily: it failed later, in the profile
BAD_TEXT = _buffer.getvalue().replace(b"Lyon", b"Ly\xffn")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project folder whose store holds model m/1 (on x and y), with expectations for
    the dataset ``fuzz``; the tests run in it."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "ferry.yaml").write_text(
        "data:\n  fuzz:\n    expectations:\n      - not_null: x\n"
        "      - range: {column: y, min: -100, max: 100}\n      - row_count: {min: 1}\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as patch:
        for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_EXPERIMENT"):
            patch.delenv(key, raising=False)
        patch.chdir(folder)
        ferry.configure(home=folder / ".ferry")
        with ferry.start_run():
            model = LinearRegression().fit(FRAME[["x", "y"]], FRAME["label"])
            ferry.log_model(
                model, input_example=FRAME[["x", "y"]].head(), registered_model_name="m"
            )
        ferry.configure(home=folder / ".ferry")  # closes the client and its journal
        yield folder


def _damaged(draw: st.DrawFn, data: bytes) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "splice", "as is"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "flip":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=40)) + data[at:]
    return data


@st.composite
def _files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name and its bytes: damaged Parquet or CSV, text in another encoding, a huge
    line, random bytes, or one format under the other's name."""
    kind = draw(st.sampled_from(["parquet", "csv", "encoding", "huge", "random", "swapped"]))
    if kind == "parquet":
        return "table.parquet", _damaged(draw, PARQUET)
    if kind == "csv":
        return "table.csv", _damaged(draw, CSV)
    if kind == "encoding":
        codec = draw(st.sampled_from(["utf-16", "latin-1", "cp1252", "utf-8-sig", "utf-32"]))
        text = FRAME.head(5).assign(city="Zürich").to_csv(index=False)
        return "table.csv", text.encode(codec)
    if kind == "huge":
        width = draw(st.sampled_from([300_000, 2_000_000]))
        line = draw(st.sampled_from(["x" * width, ",".join(["1"] * (width // 2)), '"' * width]))
        return "table.csv", CSV + line.encode() + b"\n"
    if kind == "random":
        suffix = draw(st.sampled_from(["csv", "parquet"]))
        return f"table.{suffix}", draw(st.binary(max_size=200))
    return draw(st.sampled_from([("table.csv", PARQUET), ("table.parquet", CSV)]))


FILES = _files().map(lambda pair: _file(*pair))


class File(bytes):
    """The file's bytes, shown by their size and first bytes when hypothesis reports it."""

    name = "table.csv"

    def __repr__(self) -> str:
        return f"File({self.name}, {len(self)} bytes: {bytes(self[:60])!r}...)"


def _file(name: str, content: bytes) -> File:
    file = File(content)
    file.name = name
    return file


Cli = Callable[..., tuple[int, str, str]]


def _check(result: tuple[int, str, str], what: str) -> int:
    code, out, err = result
    if what == "data validate" and code == 1 and not err and "FAIL" in out:
        return 1  # the data broke an expectation: the report says which
    assert "Traceback" not in err, (what, err)
    assert "error: unexpected" not in err, (what, err)  # the CLI's last resort for a bug
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert code in (1, 2), (what, code, err)
        assert lines and lines[-1].startswith("error:"), (what, err)
        assert len([line for line in lines if line.startswith("error:")]) == 1, (what, err)
    return int(code)


@settings(
    max_examples=15,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(file=FILES)
@example(file=_file("table.parquet", PARQUET[: len(PARQUET) // 2]))
@example(file=_file("table.csv", b""))
# a Parquet file whose pandas metadata is damaged: KeyError and TypeError inside pandas
@example(file=_file("table.parquet", PARQUET.replace(b'"pandas_type"', b'"pandas_typX"', 1)))
@example(file=_file("table.parquet", PARQUET.replace(b'"float64"', b'"fl\x7fat64"', 1)))
@example(file=_file("table.parquet", BAD_TEXT))
# an ArrowException that is not a ValueError (with pyarrow 26: thrift's integer overflow)
@example(file=_file("table.parquet", PARQUET[:3460] + b"\x59" + PARQUET[3461:]))
@example(file=_file("table.csv", "x,y\n1,2\n".encode("utf-16")))
def test_a_damaged_file_is_one_line_error_or_works_everywhere(
    project: Path, cli: Cli, file: File
) -> None:
    name, content = file.name, bytes(file)
    path = project / name
    shutil.rmtree(project / "out.parquet.parts", ignore_errors=True)
    (project / "out.parquet").unlink(missing_ok=True)
    path.write_bytes(content)
    home = ("--home", str(project / ".ferry"))
    added = _check(cli(*home, "data", "add", name, "--name", "fuzz"), "data add")
    if added == 0:
        _check(cli(*home, "data", "validate", "fuzz"), "data validate")
    _check(cli(*home, "predict", "models:/m/1", name, "out.parquet", "--workers", "1"), "predict")
    _check(cli(*home, "feedback", "import", name, "--id-column", "prediction_id"), "feedback")
