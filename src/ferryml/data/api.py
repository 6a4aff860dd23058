"""The data API for scripts: ``ferryml.data.add(...)``, ``ferryml.data.load("name@3")``.

Inside an active run, ``add`` records the run as the version's producer and ``load``
records the version as the run's input, so lineage needs no extra call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferryml.data.workspace import Workspace
from ferryml.store.entities import DatasetVersion

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["add", "delete", "load"]


def add(data: pd.DataFrame | str | os.PathLike[str], name: str | None = None) -> DatasetVersion:
    """Version a DataFrame (as Parquet; ``name`` required) or a project file or folder.

    Example:
        >>> version = ferryml.data.add(frame, name="customers")
        >>> version.ref
        'customers@1'
    """
    from ferryml.tracking.fluent import active_run

    run = active_run()
    workspace = Workspace(_settings())
    try:
        if isinstance(data, (str, os.PathLike)):
            return workspace.add(data, name, run_id=run.run_id if run else None)
        if name is None:
            from ferryml.errors import InvalidArgument

            raise InvalidArgument("Name the table: ferryml.data.add(frame, name='customers').")
        return workspace.add_frame(data, name, run_id=run.run_id if run else None)
    finally:
        workspace.close()


def delete(ref: str) -> None:
    """Delete dataset version ``"name@3"`` for good; its number is never reused, and
    ``ferry gc`` reclaims the files no other version holds."""
    workspace = Workspace(_settings())
    try:
        workspace.delete_version(ref)
    finally:
        workspace.close()


def load(ref: str, *, context: str = "training") -> pd.DataFrame | Path:
    """A version by reference (``"name@3"``, or ``"name"`` for the latest): a DataFrame
    for a table, a local path for a file or folder."""
    from ferryml.tracking.fluent import active_run, log_input

    workspace = Workspace(_settings())
    try:
        version = workspace.version(ref)
        loaded: Any = workspace.load(version.ref)
    finally:
        workspace.close()
    if active_run() is not None:
        log_input(version, context=context)
    return loaded


def _settings() -> Any:
    """The settings of the fluent tracking API, so data and runs share one store."""
    from ferryml.tracking.fluent import _fluent

    return _fluent.get_client().settings
