"""Pipelines the tests run (a module, so worker processes can import the steps)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import ferryml as ferry
from ferryml.data import NotNull
from ferryml.pipelines import pipeline, step


def _count(name: str) -> None:
    """Append the step's name to $FERRY_TEST_CALLS, so tests see which steps really ran."""
    calls = os.environ.get("FERRY_TEST_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(name + "\n")


def scale(values: np.ndarray, factor: float) -> np.ndarray:
    return values * factor


@step
def load(rows: int = 10) -> pd.DataFrame:
    _count("load")
    print(f"loading {rows} rows")
    return pd.DataFrame({"x": np.arange(rows, dtype=float), "y": np.arange(rows) % 2})


@step(validate={"frame": [NotNull("x")]})
def features(frame: pd.DataFrame, factor: float = 2.0) -> np.ndarray:
    _count("features")
    return scale(frame["x"].to_numpy(), factor)


@step
def stats(frame: pd.DataFrame) -> dict:
    _count("stats")
    return {"rows": len(frame), "mean": float(frame["x"].mean())}


@step
def train(values: np.ndarray, summary: dict, lr: float = 0.1) -> float:
    _count("train")
    score = float(values.sum() * lr / (summary["rows"] or 1))
    ferry.log_metric("score", score)
    return score


@pipeline
def training(rows: int = 10, lr: float = 0.1, factor: float = 2.0):
    frame = load(rows)
    return train(features(frame, factor=factor), stats(frame), lr=lr)


@step
def broken(frame: pd.DataFrame) -> int:
    _count("broken")
    raise ValueError("bad data in step")


@step
def after_broken(value: int) -> int:
    _count("after_broken")
    return value


@pipeline
def partly_broken(rows: int = 5):
    frame = load(rows)
    after_broken(broken(frame))
    return stats(frame)


@step(retries=2, backoff=0.01)
def flaky(marker: str) -> str:
    """Fails until it has been called three times (counted in a file)."""
    path = Path(marker)
    tries = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(tries))
    _count("flaky")
    if tries < 3:
        raise RuntimeError(f"flaky failure {tries}")
    return f"ok after {tries}"


@pipeline
def retrying(marker: str = "/tmp/none"):
    return flaky(marker)


@step(timeout=0.5)
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pipeline
def sleepy(seconds: float = 5.0):
    return slow(seconds)


@step
def busy(i: int, seconds: float = 0.3) -> list[float]:
    """Burns ``seconds`` of CPU; returns when it started and ended (wall clock)."""
    started = time.time()
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass
    return [started, time.time()]


@pipeline
def fan_out(n: int = 4, seconds: float = 0.3):
    return [busy(i, seconds) for i in range(n)][-1]


@step
def unstorable() -> object:
    return (x for x in range(3))


@pipeline
def bad_output():
    return unstorable()


@step
def load_with_gaps(rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, None] * (rows // 2)})


@pipeline
def invalid_input():
    return features(load_with_gaps())


@step
def fails_while(marker: str) -> str:
    _count("fails_while")
    if Path(marker).exists():
        raise RuntimeError("marker present")
    return "done"


@pipeline
def resumable(marker: str = "/tmp/none", rows: int = 6):
    frame = load(rows)
    checked = fails_while(marker)
    return stats(frame), checked
