"""Models in MLflow's format (a folder with an ``MLmodel`` file) as ferryml packages: the
folder's files keep their digests, and the package's metadata takes the signature, the
input example and the requirements from MLflow's own files. The ``mlflow`` flavor loads
them (registry/flavors/mlflow.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from ferryml.errors import InvalidArgument
from ferryml.registry.package import PackageMeta
from ferryml.registry.signature import ColumnSpec, Signature
from ferryml.store.artifacts import ArtifactStore

__all__ = ["MLMODEL", "package_mlmodel", "signature_of"]

MLMODEL = "MLmodel"
# MLflow's column types as ferryml's signature types; others leave the signature out.
_TYPES = {
    "double": "float",
    "float": "float",
    "long": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
    "datetime": "datetime",
}


def signature_of(mlmodel: Mapping[str, Any]) -> Signature | None:
    """The input columns of an MLmodel's signature, when they are named columns of types
    ferryml knows (a tensor signature gives None)."""
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    if not inputs:
        return None
    try:
        columns = json.loads(inputs)
        specs = tuple(
            ColumnSpec(c["name"], _TYPES[c["type"]], not c.get("required", True)) for c in columns
        )
    except (ValueError, KeyError, TypeError):
        return None
    return Signature(specs) if specs else None


def package_mlmodel(
    artifacts: ArtifactStore, files: Mapping[str, tuple[str, int]]
) -> tuple[str, PackageMeta]:
    """Make a package of an MLflow model folder whose files (relative path -> digest,
    size) are in ``artifacts``; returns the package digest and its metadata.

    Raises:
        InvalidArgument: the files hold no readable MLmodel.
    """
    if MLMODEL not in files:
        raise InvalidArgument(
            "The model's files hold no MLmodel file: log it with mlflow.<flavor>.log_model, "
            "or with ferryml.log_model."
        )
    try:
        mlmodel = yaml.safe_load(artifacts.get_bytes(files[MLMODEL][0]))
        if not isinstance(mlmodel, dict) or not isinstance(mlmodel.get("flavors"), dict):
            raise ValueError("no flavors")
    except (yaml.YAMLError, ValueError) as e:
        raise InvalidArgument(f"The model's MLmodel file is not readable: {e}.") from e
    signature = signature_of(mlmodel)
    meta = PackageMeta(
        "mlflow",
        {path: digest for path, (digest, _) in files.items()},
        {path: size for path, (_, size) in files.items()},
        signature.to_dict() if signature else None,
        _example(artifacts, files, mlmodel),
        requirements=_requirements(artifacts, files),
    )
    return artifacts.put_bytes(meta.to_bytes()).digest, meta


def _example(
    artifacts: ArtifactStore, files: Mapping[str, tuple[str, int]], mlmodel: Mapping[str, Any]
) -> list[dict[str, Any]] | None:
    name = (mlmodel.get("saved_input_example_info") or {}).get("artifact_path")
    if not name or name not in files:
        return None
    try:
        example = json.loads(artifacts.get_bytes(files[name][0]))
        if isinstance(example, dict) and "columns" in example and "data" in example:
            return [dict(zip(example["columns"], row, strict=False)) for row in example["data"]]
    except (ValueError, TypeError):
        pass
    return None


def _requirements(artifacts: ArtifactStore, files: Mapping[str, tuple[str, int]]) -> list[str]:
    if "requirements.txt" not in files:
        return []
    text = artifacts.get_bytes(files["requirements.txt"][0]).decode(errors="replace")
    lines = [line.strip() for line in text.splitlines()]
    return [x for x in lines if x and not x.startswith(("#", "-")) and not x.startswith("mlflow")]
