"""The layers import only downward: the store knows nothing of the packages built on it,
and nothing outside the store reaches into its private names."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ferryml"
# What the store may import: itself and the package's foundations.
STORE_MAY_IMPORT = ("ferryml.store", "ferryml.errors", "ferryml.config", "ferryml._")


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of each ``ferryml`` import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "ferryml":
            found.extend((f"ferryml.{a.name}", [], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, [], node.lineno) for a in node.names)
    return [f for f in found if f[0].startswith("ferryml.")]


def test_the_store_imports_nothing_built_on_it() -> None:
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted((SRC / "store").rglob("*.py"))
        for module, _, line in _imports(path)
        if not module.startswith(STORE_MAY_IMPORT)
    ]
    assert wrong == []


def test_nothing_outside_the_store_uses_its_private_names() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        if (SRC / "store") in path.parents:
            continue
        for module, names, line in _imports(path):
            if not module.startswith("ferryml.store"):
                continue
            private = [p for p in module.split(".") if p.startswith("_")]
            private += [n for n in names if n.startswith("_")]
            if private:
                wrong.append(f"{path.relative_to(SRC)}:{line} uses {module} {private}")
    assert wrong == []
