"""Bringing other tools' records into ferryml: ``ferry import mlflow SOURCE``."""

from __future__ import annotations

from ferryml.imports.mlflow import ImportReport, import_mlflow, open_source

__all__ = ["ImportReport", "import_mlflow", "open_source"]
