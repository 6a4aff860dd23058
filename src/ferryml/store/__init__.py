"""Stores: metadata (SQL) and artifacts (content-addressed blobs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_EXPORTS = {
    "ArtifactStore": "ferryml.store.artifacts",
    "Blob": "ferryml.store.artifacts",
    "SqlStore": "ferryml.store.sql",
    "TrackingStore": "ferryml.store.base",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.store.artifacts import ArtifactStore, Blob
    from ferryml.store.base import TrackingStore
    from ferryml.store.sql import SqlStore
