"""Model packages: the flavor's files and a metadata file (flavor, signature, input
example, Python version, requirements, every file's digest), each stored in the artifact
store by digest. A package is named by its metadata's digest, so checking that one digest
and then each file's against it proves the whole package is what was registered.

A model logged with training data also carries a small sample of it
(``ferry-background.parquet``, a package file like the flavor's), the background rows that
explanations compare a prediction against."""

from __future__ import annotations

import io
import json
import logging
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferryml.errors import IntegrityError, InvalidArgument
from ferryml.registry.flavors.base import Predictor
from ferryml.registry.signature import Signature, as_frame
from ferryml.store.artifacts import ArtifactStore

__all__ = [
    "BACKGROUND",
    "METADATA",
    "LoadedModel",
    "PackageMeta",
    "background_sample",
    "load_package",
    "read_background",
    "save_package",
]

METADATA = "ferry-model.json"
BACKGROUND = "ferry-background.parquet"
BACKGROUND_ROWS = 100
FORMAT = 1
log = logging.getLogger("ferryml.registry")


@dataclass(frozen=True)
class PackageMeta:
    flavor: str
    files: dict[str, str]  # relative path -> digest
    sizes: dict[str, int]
    signature: dict[str, Any] | None = None
    input_example: list[dict[str, Any]] | None = None
    python: str = field(default_factory=platform.python_version)
    requirements: list[str] = field(default_factory=list)
    profile: str | None = None  # digest of the training data's reference profile
    created: int = field(default_factory=lambda: int(time.time() * 1000))

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, **self.__dict__}
        return json.dumps(body, sort_keys=True, default=str).encode()

    @classmethod
    def from_bytes(cls, data: bytes, digest: str) -> PackageMeta:
        try:
            body = json.loads(data)
            body.pop("format")
            return cls(**body)
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(
                f"Model package {digest} has an unreadable metadata file ({e}); log the "
                "model again."
            ) from e

    @property
    def signature_obj(self) -> Signature | None:
        return Signature.from_dict(self.signature) if self.signature else None


def save_package(
    model: Any,
    artifacts: ArtifactStore,
    *,
    flavor: Any,
    signature: Signature | None,
    input_example: Any = None,
    profile: str | None = None,
    background: bytes | None = None,
) -> tuple[str, PackageMeta]:
    """Store ``model`` with ``flavor``; returns the package digest and its metadata.
    ``background`` (from ``background_sample``) becomes the package file ``BACKGROUND``."""
    with tempfile.TemporaryDirectory(prefix="ferry-model-") as tmp:
        folder = Path(tmp)
        flavor.save(model, folder)
        if background is not None:
            (folder / BACKGROUND).write_bytes(background)
        files, sizes = {}, {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            blob = artifacts.ingest_file(path)
            relative = path.relative_to(folder).as_posix()
            files[relative], sizes[relative] = blob.digest, blob.size
    example = None
    if input_example is not None:
        frame = as_frame(input_example, signature.columns if signature else None).head(5)
        example = json.loads(frame.to_json(orient="records", date_format="iso"))
    meta = PackageMeta(
        flavor.name,
        files,
        sizes,
        signature.to_dict() if signature else None,
        example,
        requirements=flavor.requirements(),
        profile=profile,
    )
    return artifacts.put_bytes(meta.to_bytes()).digest, meta


def background_sample(training_data: Any, signature: Signature | None) -> bytes | None:
    """Up to ``BACKGROUND_ROWS`` rows of ``training_data`` (the same rows every time), with
    the signature's columns and types, as Parquet; None when there are no rows or they
    cannot be written as Parquet (explanations then fall back to the input example).

    Raises:
        InvalidArgument: ``training_data`` lacks a column of the signature.
    """
    try:
        frame = as_frame(training_data, signature.columns if signature else None)
        if len(frame) > BACKGROUND_ROWS:
            frame = frame.sample(n=BACKGROUND_ROWS, random_state=0)
        if signature is not None:
            frame = signature.enforce(frame, predicting=False)  # a sample, not an input
    except InvalidArgument as e:
        raise InvalidArgument(f"training_data does not fit the model's signature: {e}") from e
    if frame.empty:
        return None
    buffer = io.BytesIO()
    try:
        frame.reset_index(drop=True).to_parquet(buffer, index=False)
    except (ValueError, TypeError, NotImplementedError) as e:  # pyarrow's errors subclass these
        log.warning("no background sample stored: the training data is not Parquet-able: %s", e)
        return None
    return buffer.getvalue()


def load_package(
    artifacts: ArtifactStore, digest: str
) -> tuple[PackageMeta, Predictor, bytes | None]:
    """Check the metadata's digest, then every file's, and only then deserialize. Returns
    the metadata, the flavor's model and the background sample's bytes (if it has one).

    Raises:
        IntegrityError: a file does not match its digest (it was changed after it was
            logged); nothing was deserialized.
    """
    from ferryml.registry.flavors import get_flavor

    meta = PackageMeta.from_bytes(artifacts.get_bytes(digest), digest)
    flavor = get_flavor(meta.flavor)
    with tempfile.TemporaryDirectory(prefix="ferry-model-") as tmp:
        folder = Path(tmp)
        for relative, file_digest in meta.files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.write_bytes(artifacts.get_bytes(file_digest))
            except IntegrityError as e:
                raise IntegrityError(
                    f"Model file {relative!r} of package {digest} does not match the digest "
                    "recorded when it was logged: it was changed or corrupted, so it was not "
                    "loaded. Log and register the model again."
                ) from e
        return meta, flavor.load(folder), read_background(folder)


def read_background(folder: Path) -> bytes | None:
    """The background sample in a package folder whose files were checked, if it has one."""
    path = folder / BACKGROUND
    return path.read_bytes() if path.is_file() else None


class LoadedModel:
    """A loaded model: ``predict`` (and ``predict_proba`` where the model has it) check the
    input against the signature first."""

    def __init__(
        self,
        meta: PackageMeta,
        predictor: Predictor,
        uri: str,
        version: Any = None,
        *,
        background: bytes | None = None,
    ) -> None:
        self.metadata = meta
        self.signature = meta.signature_obj
        self.uri = uri
        self.version = version  # the ModelVersion, when loaded from the registry
        self.background = background  # Parquet bytes of the training sample, digest-checked
        self._predictor = predictor

    @property
    def flavor(self) -> str:
        return self.metadata.flavor

    @property
    def raw(self) -> Predictor:
        """The flavor's own model object."""
        return self._predictor

    def prepare(self, data: Any) -> Any:
        if self.signature is None:
            return as_frame(data, None)
        return self.signature.enforce(data)

    def predict(self, data: Any) -> Any:
        return self._predictor.predict(self.prepare(data))

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self._predictor, "predict_proba", None))

    def predict_proba(self, data: Any) -> Any:
        if not self.has_proba:
            raise InvalidArgument(f"Model {self.uri} gives no probabilities (predict_proba).")
        return self._predictor.predict_proba(self.prepare(data))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<LoadedModel {self.uri} flavor={self.flavor}>"
