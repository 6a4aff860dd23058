"""Models: packages (flavors, signatures), the registry with aliases and an audit trail,
evaluation and promotion gates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

_EXPORTS = {
    "Registry": "ferryml.registry.models",
    "Lineage": "ferryml.registry.models",
    "LoadedModel": "ferryml.registry.package",
    "Signature": "ferryml.registry.signature",
    "ColumnSpec": "ferryml.registry.signature",
    "infer_signature": "ferryml.registry.signature",
    "Gate": "ferryml.registry.gates",
    "Decision": "ferryml.registry.gates",
    "Check": "ferryml.registry.gates",
    "ModelInfo": "ferryml.registry.api",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from ferryml.registry.api import ModelInfo
    from ferryml.registry.gates import Check, Decision, Gate
    from ferryml.registry.models import Lineage, Registry
    from ferryml.registry.package import LoadedModel
    from ferryml.registry.signature import ColumnSpec, Signature, infer_signature
