"""ferryml: carry a model from a notebook to production and keep it healthy there.

Example:
    >>> import ferryml as ferry
    >>> ferry.set_experiment("churn")
    >>> with ferry.start_run(run_name="baseline"):
    ...     ferry.log_param("model", "rf")
    ...     ferry.log_metric("auc", 0.91)

Names are imported on first use, so ``import ferryml`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryml._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # tracking, fluent
    "configure": "ferryml.tracking.fluent",
    "start_run": "ferryml.tracking.fluent",
    "end_run": "ferryml.tracking.fluent",
    "active_run": "ferryml.tracking.fluent",
    "ActiveRun": "ferryml.tracking.fluent",
    "set_experiment": "ferryml.tracking.fluent",
    "create_experiment": "ferryml.tracking.fluent",
    "get_experiment_by_name": "ferryml.tracking.fluent",
    "log_param": "ferryml.tracking.fluent",
    "log_params": "ferryml.tracking.fluent",
    "log_metric": "ferryml.tracking.fluent",
    "log_metrics": "ferryml.tracking.fluent",
    "set_tag": "ferryml.tracking.fluent",
    "set_tags": "ferryml.tracking.fluent",
    "log_artifact": "ferryml.tracking.fluent",
    "log_artifacts": "ferryml.tracking.fluent",
    "log_text": "ferryml.tracking.fluent",
    "log_dict": "ferryml.tracking.fluent",
    "log_figure": "ferryml.tracking.fluent",
    "log_input": "ferryml.tracking.fluent",
    "get_run": "ferryml.tracking.fluent",
    "delete_run": "ferryml.tracking.fluent",
    "restore_run": "ferryml.tracking.fluent",
    "delete_experiment": "ferryml.tracking.fluent",
    "restore_experiment": "ferryml.tracking.fluent",
    "search_runs": "ferryml.tracking.fluent",
    "autolog": "ferryml.tracking.autolog",
    "autolog_torch": "ferryml.tracking._autolog_torch",
    "TorchAutolog": "ferryml.tracking._autolog_torch",
    # models
    "log_model": "ferryml.registry.api",
    "load_model": "ferryml.registry.api",
    "register_model": "ferryml.registry.api",
    "set_registered_model_alias": "ferryml.registry.api",
    "delete_registered_model_alias": "ferryml.registry.api",
    "delete_model_version": "ferryml.registry.api",
    "delete_registered_model": "ferryml.registry.api",
    "evaluate": "ferryml.registry.api",
    "promote": "ferryml.registry.api",
    "explain": "ferryml.serving.explain",
    # tracking, by run id
    "FerryClient": "ferryml.tracking.client",
    "Param": "ferryml.tracking.client",
    "RunTag": "ferryml.tracking.client",
    # entities
    "Experiment": "ferryml.store.entities",
    "Metric": "ferryml.store.entities",
    "Run": "ferryml.store.entities",
    "RunInfo": "ferryml.store.entities",
    "RunStatus": "ferryml.store.entities",
    "ViewType": "ferryml.store.entities",
    # settings and errors
    "Settings": "ferryml.config",
    "FerryError": "ferryml.errors",
    "NotFound": "ferryml.errors",
    "AlreadyExists": "ferryml.errors",
    "InvalidArgument": "ferryml.errors",
    "Conflict": "ferryml.errors",
    "IntegrityError": "ferryml.errors",
    "StoreUnavailable": "ferryml.errors",
    "IncompatibleStore": "ferryml.errors",
    "MissingExtra": "ferryml.errors",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from ferryml.config import Settings
    from ferryml.errors import (
        AlreadyExists,
        Conflict,
        FerryError,
        IncompatibleStore,
        IntegrityError,
        InvalidArgument,
        MissingExtra,
        NotFound,
        StoreUnavailable,
    )
    from ferryml.registry.api import (
        delete_model_version,
        delete_registered_model,
        delete_registered_model_alias,
        evaluate,
        load_model,
        log_model,
        promote,
        register_model,
        set_registered_model_alias,
    )
    from ferryml.serving.explain import explain
    from ferryml.store.entities import Experiment, Metric, Run, RunInfo, RunStatus, ViewType
    from ferryml.tracking._autolog_torch import TorchAutolog, autolog_torch
    from ferryml.tracking.autolog import autolog
    from ferryml.tracking.client import FerryClient, Param, RunTag
    from ferryml.tracking.fluent import (
        ActiveRun,
        active_run,
        configure,
        create_experiment,
        delete_experiment,
        delete_run,
        end_run,
        get_experiment_by_name,
        get_run,
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        restore_experiment,
        restore_run,
        search_runs,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
    )
