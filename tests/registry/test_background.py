"""The background sample a model logged with training data carries: the same rows every
time, a package file like the flavor's, checked against its digest wherever it is loaded."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import IntegrityError
from ferryml.registry import Registry
from ferryml.registry.package import BACKGROUND
from ferryml.serving.packaging import export_model, load_exported


def _log(X: pd.DataFrame, y: pd.Series, **kw: object) -> str:
    model = LogisticRegression(max_iter=50).fit(X[["mean radius", "mean texture"]], y)
    with ferry.start_run():
        return ferry.log_model(model, registered_model_name="m", **kw).model_uri


def _rows(data: bytes | None) -> pd.DataFrame:
    assert data is not None
    return pd.read_parquet(io.BytesIO(data))


def test_training_data_leaves_a_sample_of_at_most_100_rows_the_same_every_time(
    fluent: Settings,
) -> None:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data[["mean radius", "mean texture"]], data.target
    # The signature comes from the example; the training data has the label too.
    logged = {"input_example": X.head(), "training_data": X.assign(label=y)}
    first = ferry.load_model(_log(X, y, **logged))
    second = ferry.load_model(_log(X, y, **logged))
    assert BACKGROUND in first.metadata.files
    assert first.metadata.files[BACKGROUND] == second.metadata.files[BACKGROUND]
    sample = _rows(first.background)
    assert list(sample.columns) == ["mean radius", "mean texture"]  # the signature's
    assert len(sample) == 100 and len(sample.drop_duplicates()) == 100
    assert sample.merge(X.drop_duplicates()).shape == sample.shape  # rows of the training data

    small = ferry.load_model(_log(X, y, training_data=X.head(30)))
    pd.testing.assert_frame_equal(_rows(small.background), X.head(30).reset_index(drop=True))
    plain = ferry.load_model(_log(X, y, input_example=X.head()))
    assert plain.background is None and BACKGROUND not in plain.metadata.files


def test_a_changed_background_is_refused_in_the_registry_and_in_an_export(
    fluent: Settings, tmp_path: Path
) -> None:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data[["mean radius", "mean texture"]], data.target
    _log(X, y, training_data=X)
    exported = export_model(fluent, "m/1", tmp_path / "out")
    assert load_exported(exported.folder).background == ferry.load_model("models:/m/1").background

    changed = X.head(100).assign(**{"mean radius": 1e6}).to_parquet(index=False)
    (exported.folder / BACKGROUND).write_bytes(changed)
    with pytest.raises(IntegrityError, match=f"Model file '{BACKGROUND}' in .* does not match"):
        load_exported(exported.folder)

    registry = Registry(fluent)
    try:
        blob = registry.artifacts.local_path(exported.metadata.files[BACKGROUND])
        os.chmod(blob, 0o644)
        blob.write_bytes(changed)
    finally:
        registry.close()
    with pytest.raises(IntegrityError, match=f"Model file '{BACKGROUND}' of package"):
        ferry.load_model("models:/m/1")
