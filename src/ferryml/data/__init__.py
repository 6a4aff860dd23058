"""Data: versions of files, folders and tables; reference profiles (mergeable summaries);
schemas and declarative expectations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_PROFILE = "ferryml.data.profile"
_VALIDATION = "ferryml.data.validation"
_EXPORTS = {
    "add": "ferryml.data.api",
    "delete": "ferryml.data.api",
    "load": "ferryml.data.api",
    "Workspace": "ferryml.data.workspace",
    "DataStatus": "ferryml.data.workspace",
    "DataDiff": "ferryml.data.compare",
    "ParquetDataset": "ferryml.data.dataset",
    "iter_batches": "ferryml.data.dataset",
    "open_dataset": "ferryml.data.dataset",
    "profile_dataset": "ferryml.data.dataset",
    "diff_versions": "ferryml.data.compare",
    "TransferReport": "ferryml.data.transfer",
    "push": "ferryml.data.transfer",
    "pull": "ferryml.data.transfer",
    "CategoricalProfile": _PROFILE,
    "ColumnProfile": _PROFILE,
    "NumericProfile": _PROFILE,
    "Profile": _PROFILE,
    "merge": _PROFILE,
    "profile_chunks": _PROFILE,
    "profile_frame": _PROFILE,
    "AllowedValues": _VALIDATION,
    "ColumnChange": "ferryml.data.schema",
    "ColumnSchema": "ferryml.data.schema",
    "Custom": _VALIDATION,
    "Expectation": _VALIDATION,
    "ExpectationResult": _VALIDATION,
    "Fresh": _VALIDATION,
    "InRange": _VALIDATION,
    "Matches": _VALIDATION,
    "NotNull": _VALIDATION,
    "RowCount": _VALIDATION,
    "Schema": "ferryml.data.schema",
    "SchemaDiff": "ferryml.data.schema",
    "Unique": _VALIDATION,
    "ValidationReport": _VALIDATION,
    "expectations_from_config": _VALIDATION,
    "infer_schema": "ferryml.data.schema",
    "validate": _VALIDATION,
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.data.api import add, delete, load
    from ferryml.data.compare import DataDiff, diff_versions
    from ferryml.data.dataset import ParquetDataset, iter_batches, open_dataset, profile_dataset
    from ferryml.data.profile import (
        CategoricalProfile,
        ColumnProfile,
        NumericProfile,
        Profile,
        merge,
        profile_chunks,
        profile_frame,
    )
    from ferryml.data.schema import ColumnChange, ColumnSchema, Schema, SchemaDiff, infer_schema
    from ferryml.data.transfer import TransferReport, pull, push
    from ferryml.data.validation import (
        AllowedValues,
        Custom,
        Expectation,
        ExpectationResult,
        Fresh,
        InRange,
        Matches,
        NotNull,
        RowCount,
        Unique,
        ValidationReport,
        expectations_from_config,
        validate,
    )
    from ferryml.data.workspace import DataStatus, Workspace
