"""The registry end to end through the Python API, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy.exc import OperationalError

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import IntegrityError, InvalidArgument, NotFound, StoreUnavailable
from ferryml.registry import Gate, Registry
from ferryml.registry.gates import promote


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


@pytest.fixture
def registry(fluent: Settings) -> Iterator[Registry]:
    reg = Registry(fluent)
    yield reg
    reg.close()


def _logged(X: pd.DataFrame, y: pd.Series, model: object | None = None, **kw: object) -> object:
    model = model or make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with ferry.start_run():
        ferry.log_param("kind", type(model).__name__)
        return ferry.log_model(model, input_example=X.head(5), registered_model_name="cancer", **kw)


def test_log_and_register_make_version_1_with_signature_and_profile(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    info = _logged(X, y, training_data=X)
    version = info.registered_version
    assert (version.name, version.version, version.flavor) == ("cancer", 1, "sklearn")
    assert version.source == f"runs:/{info.run_id}/model"
    assert version.profile_digest is not None
    loaded = ferry.load_model("models:/cancer/1")
    assert loaded.signature is not None and loaded.signature.columns == list(X.columns)
    for uri in ("models:/cancer/latest", "models:/cancer", f"runs:/{info.run_id}/model"):
        assert ferry.load_model(uri).metadata.files == loaded.metadata.files


def test_a_loaded_model_predicts_like_the_original_and_enforces_its_signature(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    _logged(X, y, model)
    loaded = ferry.load_model("models:/cancer/1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X.head()), model.predict_proba(X.head()))
    shuffled = X.head()[list(reversed(X.columns))].assign(extra=1)
    np.testing.assert_array_equal(loaded.predict(shuffled), model.predict(X.head()))
    np.testing.assert_array_equal(loaded.predict(X.head().to_numpy()), model.predict(X.head()))
    with pytest.raises(InvalidArgument, match="missing column 'mean radius'"):
        loaded.predict(X.head().drop(columns="mean radius"))
    with pytest.raises(InvalidArgument, match="Column 'mean texture' has string values"):
        loaded.predict(X.head().assign(**{"mean texture": "soft"}))


def test_a_tampered_model_file_is_refused_and_never_unpickled(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, y = cancer
    _logged(X, y)
    version = registry.version("cancer/1")
    meta = registry.load("models:/cancer/1").metadata
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (open, (str(marker), "w"))

    for digest in meta.files.values():
        blob = registry.artifacts.local_path(digest)
        os.chmod(blob, 0o644)
        blob.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(IntegrityError, match="does not match the digest recorded"):
        ferry.load_model(f"models:/cancer/{version.version}")
    assert not marker.exists()


def test_aliases_resolve_and_every_move_is_audited(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    _logged(X, y)
    _logged(X, y, DummyClassifier().fit(X, y))
    ferry.set_registered_model_alias("cancer", "champion", 1, reason="first good one")
    assert registry.version("cancer@champion").version == 1
    ferry.set_registered_model_alias("cancer", "champion", 2, reason="try the dummy")
    assert ferry.load_model("models:/cancer@champion").version.version == 2
    moves = [
        (e.action, e.alias, e.from_version, e.to_version, e.reason)
        for e in registry.store.events("cancer")
        if e.alias
    ]
    assert moves == [
        ("set_alias", "champion", None, 1, "first good one"),
        ("set_alias", "champion", 1, 2, "try the dummy"),
    ]
    assert all(e.user for e in registry.store.events("cancer"))


def test_unknown_models_versions_aliases_and_uris_are_clear_errors(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    _logged(X, y)
    with pytest.raises(NotFound, match="Registered model 'nope' not found"):
        ferry.load_model("models:/nope/1")
    with pytest.raises(NotFound, match="Model 'cancer' has no version 7"):
        ferry.set_registered_model_alias("cancer", "champion", 7)
    with pytest.raises(NotFound, match="Model 'cancer' has no alias 'staging'"):
        ferry.load_model("models:/cancer@staging")
    with pytest.raises(InvalidArgument, match="Alias 'latest' is invalid"):
        ferry.set_registered_model_alias("cancer", "latest", 1)
    with pytest.raises(InvalidArgument, match="is not understood. Use models:/NAME@ALIAS"):
        ferry.load_model("s3://bucket/model.pkl")
    with pytest.raises(InvalidArgument, match="Version 'x' in 'cancer/x' is not a number"):
        ferry.load_model("models:/cancer/x")
    assert registry.store.events("cancer")[-1].action == "create_version"  # nothing changed


def test_an_object_no_flavor_understands_is_refused(fluent: Settings) -> None:
    with ferry.start_run(), pytest.raises(InvalidArgument, match="No flavor saves a model"):
        ferry.log_model(object())


def test_lineage_goes_from_version_to_run_data_and_code(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    frame = X.assign(target=y)
    import ferryml.data

    version = ferryml.data.add(frame, name="cancer-data")
    with ferry.start_run() as run:
        ferryml.data.load("cancer-data@1")
        ferry.log_param("C", 1.0)
        ferry.log_metric("auc", 0.99)
        ferry.log_model(
            DummyClassifier().fit(X, y),
            input_example=X.head(),
            registered_model_name="cancer",
        )
    ferry.set_registered_model_alias("cancer", "champion", 1)
    found = registry.lineage("cancer@champion")
    assert found.run is not None and found.run.info.run_id == run.run_id
    assert found.run.data.params["C"] == "1.0" and found.run.data.metrics["auc"] == 0.99
    assert found.data_versions == ("cancer-data@1",)
    assert registry.version("cancer/1").profile_digest == version.profile_digest
    assert "ferry.python" in found.environment


def test_promotion_gates_decide_on_evidence_and_record_why(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    holdout = X.assign(target=y).sample(200, random_state=1)
    _logged(X, y)  # v1: a good model
    first = ferry.promote("cancer", 1, data=holdout, target="target")
    assert (first.passed, first.moved, first.champion) == (True, True, None)
    _logged(X, y, DummyClassifier(strategy="prior").fit(X, y))  # v2: worse
    refused = ferry.promote(
        "cancer", 2, data=holdout, target="target", gate={"metric": "roc_auc", "min_delta": 0.0}
    )
    assert (refused.passed, refused.moved, refused.champion) == (False, False, 1)
    assert registry.version("cancer@champion").version == 1
    forced = ferry.promote(
        "cancer", 2, data=holdout, target="target", force=True, reason="testing the override"
    )
    assert (forced.passed, forced.forced, forced.moved) == (False, True, True)
    assert registry.version("cancer@champion").version == 2
    events = [
        (e.action, e.from_version, e.to_version)
        for e in registry.store.events("cancer")
        if e.action in ("promote", "promotion_refused")
    ]
    assert events == [("promote", None, 1), ("promotion_refused", 1, 1), ("promote", 1, 2)]
    last = registry.store.events("cancer")[-1]
    assert last.reason == "FORCED: testing the override"
    assert last.evidence["candidate"]["metrics"]["roc_auc"] == forced.candidate_metrics["roc_auc"]
    assert registry.version("cancer/1").metrics["roc_auc"] > 0.9  # stored on the version


def test_a_champion_that_cannot_be_read_refuses_the_promotion(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = cancer
    holdout = X.assign(target=y).head(100)
    _logged(X, y)
    ferry.set_registered_model_alias("cancer", "champion", 1)
    _logged(X, y, DummyClassifier(strategy="prior").fit(X, y))  # v2: worse, never judged

    def lost(name: str, alias: str) -> int:
        raise OperationalError("SELECT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(registry.store, "resolve_alias", lost)
    with pytest.raises(StoreUnavailable) as raised:
        promote(registry, "cancer", 2, data=holdout, target="target", task="classification")
    assert str(raised.value) == (
        "Cannot read which version of 'cancer' holds 'champion', so the candidate cannot be "
        "compared with it: server closed the connection. Nothing was promoted; try again once "
        "the store answers."
    )
    monkeypatch.undo()
    assert registry.version("cancer@champion").version == 1
    actions = {e.action for e in registry.store.events("cancer")}
    assert not actions & {"promote", "promotion_refused"}


def test_a_gate_can_bound_latency_and_set_floors(
    registry: Registry, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    holdout = X.assign(target=y).head(100)
    _logged(X, y)
    decision = ferry.promote(
        "cancer",
        1,
        data=holdout,
        target="target",
        gate=Gate(floors={"accuracy": 1.01}, max_latency_ms=1e6),
    )
    checks = {c.name: c.passed for c in decision.checks}
    assert checks == {"champion": True, "floor accuracy": False, "latency": True}
    assert not decision.moved
