"""The package's promises: public names, a light import, a README that runs as written."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ferryml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "ferryml",
    "ferryml.imports",
    "ferryml.server.mlflow",
    "ferryml.ui",
    "ferryml.store.sql_mlflow",
    "ferryml.errors",
    "ferryml.config",
    "ferryml.store.entities",
    "ferryml.store.records",
    "ferryml.store.base",
    "ferryml.store.sql",
    "ferryml.store.artifacts",
    "ferryml.store.filters",
    "ferryml.tracking",
    "ferryml.tracking.client",
    "ferryml.tracking.compare",
    "ferryml.cli",
    "ferryml.data",
    "ferryml.data.api",
    "ferryml.data.compare",
    "ferryml.data.profile",
    "ferryml.data.schema",
    "ferryml.data.transfer",
    "ferryml.data.validation",
    "ferryml.data.workspace",
    "ferryml.store.sql_data",
    "ferryml.store.sql_pipelines",
    "ferryml.store.sql_schedules",
    "ferryml.pipelines",
    "ferryml.pipelines.engine",
    "ferryml.pipelines.executors",
    "ferryml.pipelines.history",
    "ferryml.pipelines.schedule",
    "ferryml.pipelines.sweep",
    "ferryml.registry",
    "ferryml.registry.api",
    "ferryml.registry.evaluation",
    "ferryml.registry.flavors",
    "ferryml.registry.gates",
    "ferryml.registry.models",
    "ferryml.registry.package",
    "ferryml.registry.signature",
    "ferryml.store.sql_registry",
    "ferryml.store.sql_deployments",
    "ferryml.serving.packaging",
    "ferryml.serving.kubernetes",
    "ferryml.serving.deployments",
    "ferryml.serving.runtime",
    "ferryml.serving.explain",
    "ferryml.monitoring.performance",
    "ferryml.monitoring.concept",
    "ferryml.monitoring.estimated",
    "ferryml.store.sql_alerts",
    "ferryml.monitoring",
    "ferryml.monitoring.drift",
    "ferryml.monitoring.alerts",
    "ferryml.monitoring.channels",
    "ferryml.monitoring.monitors",
    "ferryml.store.sql_monitors",
    "ferryml.predictions",
    "ferryml.serving.predictions",
    "ferryml.monitoring.rules",
    "ferryml.store.loop",
    "ferryml.store.http_loop",
    "ferryml.serving.predlog",
    "ferryml.store.sql_predictions",
    "ferryml.serving.batching",
    "ferryml.serving.batch",
    "ferryml.serving.service",
    "ferryml.server.app",
    "ferryml.server.main",
    "ferryml.server.model",
    "ferryml.server.rpc",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_in_all_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, f"{name} lists no public names"
    for public in module.__all__:
        assert getattr(module, public) is not None


def test_top_level_api_resolves_every_export() -> None:
    for name in ferryml.__all__:
        assert getattr(ferryml, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ferryml.nope  # noqa: B018


def test_import_ferryml_loads_no_heavy_module() -> None:
    code = (
        "import sys, ferryml; heavy = [m for m in ('sqlalchemy', 'alembic', 'pandas', "
        "'numpy', 'typer', 'rich', 'fsspec') if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.e2e
def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """Every python and bash block of the README, in order, in a fresh git project."""
    python = _readme_blocks("python")
    shell = _readme_blocks("bash")
    assert python and shell
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for n, block in enumerate(python):
        script = tmp_path / f"block{n}.py"
        script.write_text(block)
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{block}\n{done.stderr}"
    for block in shell:
        if "ferry " not in block or "make " in block:
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{block}\n{done.stderr}"


def test_the_cli_starts_without_loading_data_libraries() -> None:
    code = (
        "import sys, ferryml.cli; heavy = [m for m in ('pandas', 'numpy', 'sklearn', "
        "'sqlalchemy', 'pyarrow') if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
