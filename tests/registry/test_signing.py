"""Signed model packages: with ``trust:`` in ferry.yaml, an unsigned or wrongly signed
package is refused by every loader before any byte of it is unpickled."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import IntegrityError, InvalidArgument
from ferryml.registry.models import Registry
from ferryml.registry.signing import (
    SIGNATURE_TAG,
    generate_key,
    key_id,
    read_private_key,
)
from ferryml.serving.packaging import export_model, load_exported
from ferryml.serving.runtime import ServedModel


class Evil:
    """A "model" whose unpickling makes a folder: any code a hostile package could run."""

    marker = ""

    def predict(self, data: Any) -> Any:
        return data

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project holding good/1 (scikit-learn) and evil/1 (the malicious pickle), and two
    key pairs, ``trusted`` and ``other``; ferry.yaml trusts ``trusted.pub``."""
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_EXPERIMENT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    ferry.configure(home=tmp_path / ".ferry")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 3.0, 5.0]})
    evil = Evil()
    evil.marker = str(tmp_path / "PWNED")
    with ferry.start_run():
        ferry.log_model(
            LinearRegression().fit(frame[["x"]], frame["y"]), registered_model_name="good"
        )
        ferry.log_model(evil, registered_model_name="evil")
    generate_key(tmp_path / "trusted")
    generate_key(tmp_path / "other")
    (tmp_path / "ferry.yaml").write_text("trust:\n  - trusted.pub\n", encoding="utf-8")
    ferry.configure(home=tmp_path / ".ferry")  # reads the trust list
    yield tmp_path
    ferry.configure(home=tmp_path / ".ferry")


def _settings(project: Path) -> Settings:
    return Settings.resolve(cwd=project, environ={})


def _registry(project: Path) -> Registry:
    return Registry(_settings(project))


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    line = generate_key(tmp_path / "k")
    assert line.startswith("ssh-ed25519 ") and "\n" not in line
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert (tmp_path / "k.pub").read_text().strip() == line
    with pytest.raises(InvalidArgument, match="exists already"):
        generate_key(tmp_path / "k")


def test_an_unsigned_malicious_package_is_never_unpickled(project: Path) -> None:
    marker = project / "PWNED"
    settings = _settings(project)
    loaders: list[tuple[str, Callable[[], Any]]] = [
        ("load_model", lambda: ferry.load_model("models:/evil/1")),
        ("registry", lambda: _registry(project).load("models:/evil/latest")),
        ("ferry serve", lambda: ServedModel(settings, "evil/1").load()),
        ("exported", lambda: load_exported(exported, trust=settings.trust, root=project)),
        ("ferry serve --package", lambda: ServedModel(settings, package=str(exported)).load()),
    ]
    exported = export_model(settings, "evil/1", project / "out").folder
    for what, load in loaders:
        with pytest.raises(IntegrityError, match=r"evil/1.* is not signed, and ferry.yaml"):
            load()
        assert not marker.exists(), what
    # The package really is hostile: without trust: it runs the payload when loaded.
    (project / "ferry.yaml").write_text("{}\n", encoding="utf-8")
    with contextlib.suppress(Exception):  # whatever the "model" does after its payload ran
        _registry(project).load("models:/evil/1")
    assert marker.exists()


def test_a_signed_package_loads_and_a_wrongly_signed_one_is_refused(
    project: Path, cli: Callable[..., Any]
) -> None:
    result = cli("models", "sign", "good/1", "--key", str(project / "other"))
    assert result.code == 0, result.err
    with pytest.raises(IntegrityError, match="signed by no key that ferry.yaml trusts"):
        _registry(project).load("models:/good/1")

    result = cli("models", "sign", "good/1", "--key", str(project / "trusted"))
    assert result.code == 0 and "Signed good/1" in result.out, result.err
    model = _registry(project).load("models:/good/1")
    assert model.predict(pd.DataFrame({"x": [3.0]}))[0] == pytest.approx(7.0)
    assert ferry.load_model("models:/good/1").predict(pd.DataFrame({"x": [4.0]}))[
        0
    ] == pytest.approx(9.0)
    exported = export_model(_settings(project), "good/1", project / "out").folder
    assert load_exported(exported, trust=("trusted.pub",), root=project).version is not None

    # a trusted key's signature copied from another package does not carry over
    registry = _registry(project)
    good = registry.version("good/1")
    key = read_private_key(project / "trusted")
    tag = SIGNATURE_TAG + key_id(key.public_key())
    registry.store.set_tag("evil", 1, tag, good.tags[tag])
    with pytest.raises(IntegrityError, match="does not match its package"):
        registry.load("models:/evil/1")
    assert not (project / "PWNED").exists()
    # nor does a value that is no signature at all
    registry.store.set_tag("evil", 1, tag, "not base64!")
    with pytest.raises(IntegrityError, match="does not match its package"):
        ServedModel(_settings(project), "evil/1").load()
    assert not (project / "PWNED").exists()


def test_models_sign_and_trust_errors_are_one_clear_line(
    project: Path, cli: Callable[..., Any]
) -> None:
    (project / "not-a-key").write_text("hello\n")
    result = cli("models", "sign", "good/1", "--key", str(project / "not-a-key"))
    assert result.code == 2
    assert (
        result.err.startswith("error: ")
        and "holds no unencrypted ed25519 private key" in result.err
    )
    result = cli("models", "sign", "nope/1", "--key", str(project / "trusted"))
    assert result.code == 1 and "not found" in result.err
    (project / "ferry.yaml").write_text("trust:\n  - missing.pub\n", encoding="utf-8")
    pd.DataFrame({"x": [1.0]}).to_csv(project / "in.csv", index=False)
    result = cli("predict", "models:/good/1", "in.csv", "out.csv", "--workers", "1")
    assert result.code == 2
    assert "trust: 'missing.pub' is neither a public key" in result.err
    assert not (project / "out.csv").exists()
