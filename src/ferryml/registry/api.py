"""The model API for scripts, shaped like MLflow's: ``ferryml.log_model``,
``ferryml.load_model("models:/churn@champion")``, ``ferryml.evaluate``, … on the stores the
fluent tracking API uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferryml.registry.models import Registry
from ferryml.registry.package import LoadedModel
from ferryml.store.entities import ModelVersion

__all__ = [
    "ModelInfo",
    "delete_model_version",
    "delete_registered_model",
    "delete_registered_model_alias",
    "evaluate",
    "load_model",
    "log_model",
    "promote",
    "register_model",
    "set_registered_model_alias",
]


@dataclass(frozen=True)
class ModelInfo:
    run_id: str
    artifact_path: str
    model_uri: str
    package_digest: str
    flavor: str
    registered_version: ModelVersion | None

    @property
    def registered_model_version(self) -> int | None:
        """The registered version's number, as MLflow's ``ModelInfo`` has it."""
        return None if self.registered_version is None else self.registered_version.version


@contextmanager
def _registry() -> Iterator[Registry]:
    from ferryml.tracking.fluent import _fluent

    registry = Registry(client=_fluent.get_client())  # sees what the script logged
    try:
        yield registry
    finally:
        registry.close()


def log_model(
    model: Any,
    name: str = "model",
    *,
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    training_data: Any = None,
    flavor: str | None = None,
) -> ModelInfo:
    """Store ``model`` as a package in the active run (started if none is), optionally
    registering it. The signature is inferred from ``input_example`` or ``training_data``;
    ``training_data`` (features) also gives the version its reference profile.

    Example:
        >>> with ferryml.start_run():
        ...     ferryml.log_model(clf, input_example=X[:5], registered_model_name="churn")
    """
    from ferryml.tracking.fluent import _run_id

    run_id = _run_id()
    with _registry() as registry:
        digest, meta = registry.log_model(
            run_id,
            model,
            name,
            signature=signature,
            input_example=input_example,
            training_data=training_data,
            flavor=flavor,
        )
        uri = f"runs:/{run_id}/{name}"
        version = registry.register(uri, registered_model_name) if registered_model_name else None
    return ModelInfo(run_id, name, uri, digest, meta.flavor, version)


def register_model(model_uri: str, name: str, *, description: str = "") -> ModelVersion:
    """Register the model at ``runs:/RUN_ID/PATH`` as the next version of ``name``."""
    with _registry() as registry:
        return registry.register(model_uri, name, description=description)


def load_model(model_uri: str) -> LoadedModel:
    """Load ``models:/NAME@ALIAS``, ``models:/NAME/3`` or ``runs:/ID/PATH``; every file's
    digest is checked before anything is deserialized."""
    with _registry() as registry:
        return registry.load(model_uri)


def set_registered_model_alias(name: str, alias: str, version: int, reason: str = "") -> None:
    """Point ``alias`` at ``version`` (recorded in the audit trail with ``reason``)."""
    with _registry() as registry:
        registry.set_alias(name, alias, version, reason=reason)


def delete_registered_model_alias(name: str, alias: str, reason: str = "") -> None:
    """Remove ``alias`` from model ``name`` (recorded in the audit trail)."""
    with _registry() as registry:
        registry.delete_alias(name, alias, reason=reason)


def delete_model_version(name: str, version: int, reason: str = "") -> None:
    """Delete a version for good (refused while an alias or deployment points at it);
    its number is never reused, and ``ferry gc`` reclaims its files."""
    with _registry() as registry:
        registry.delete_version(name, version, reason=reason)


def delete_registered_model(name: str, reason: str = "") -> None:
    """Delete a model and all its versions (refused while it has aliases or a deployment
    serves it); ``ferry gc`` reclaims their files."""
    with _registry() as registry:
        registry.delete_model(name, reason=reason)


def evaluate(
    model_uri: str,
    data: Any,
    *,
    target: str,
    task: str | None = None,
    slices: Sequence[str] = (),
    business_metrics: Mapping[str, Callable[..., float]] | None = None,
) -> Any:
    """Evaluate a model on ``data`` (a DataFrame, a data version ``NAME@V`` or a CSV/Parquet
    path): metrics overall and per slice, plots, permutation importance, latency. Results go
    on the model version (for ``models:/`` URIs) and, as metrics and artifacts, on the
    active run. ``task`` (classification or regression) defaults to what the model is."""
    from ferryml.registry.evaluation import evaluate_predictor
    from ferryml.registry.gates import _Prepared, infer_task
    from ferryml.tracking.fluent import _fluent, active_run
    from ferryml.tracking.fluent import log_metrics as log_run_metrics

    frame = read_data(data)
    with _registry() as registry:
        model = registry.load(model_uri)
        result = evaluate_predictor(
            _Prepared(model),
            frame,
            target=target,
            task=task or infer_task(model),  # type: ignore[arg-type]
            slices=slices,
            business_metrics=business_metrics,
        )
        metrics = {**result.metrics, "latency_ms_per_row": result.latency_ms_per_row}
        if model.version is not None:
            from ferryml._identity import current_user

            registry.store.update_model_version(
                model.version.name, model.version.version, user=current_user(), metrics=metrics
            )
    if active_run() is not None:
        log_run_metrics({f"eval_{k}": v for k, v in metrics.items()})
        client = _fluent.get_client()
        run_id = active_run().run_id  # type: ignore[union-attr]
        for file, png in result.plots.items():
            client.log_bytes(run_id, png, f"evaluation/{file}")
        client.log_dict(run_id, result.to_dict(), "evaluation/evaluation.json")
    return result


def promote(
    name: str,
    candidate: int,
    to: str = "champion",
    *,
    data: Any,
    target: str,
    task: str | None = None,
    gate: Any = None,
    force: bool = False,
    reason: str = "",
    slices: Sequence[str] = (),
) -> Any:
    """Move alias ``to`` to ``candidate`` if it passes the gate against the current holder,
    evaluated on the same ``data``; the decision and its evidence are recorded. ``task``
    defaults to what the candidate is."""
    from ferryml.registry.gates import Gate, task_of
    from ferryml.registry.gates import promote as gated

    with _registry() as registry:
        task = task or task_of(registry, f"{name}/{int(candidate)}")
        if isinstance(gate, Mapping):
            gate = Gate.from_config(gate, task)
        if gate is None:
            gate = configured_gate(registry.settings.root, name, task)
        return gated(
            registry,
            name,
            candidate,
            alias=to,
            data=read_data(data),
            target=target,
            task=task,
            gate=gate,
            force=force,
            reason=reason,
            slices=slices,
        )


def configured_gate(root: Path, name: str, task: str) -> Any:
    """The gate of ``models: {NAME: {gate: {...}}}`` in ``ferry.yaml``, else the default.

    Raises:
        ConfigError: ``ferry.yaml`` is wrong.
    """
    from ferryml.config import read_config
    from ferryml.registry.gates import default_gate, gate_from_config

    entry = (read_config(root).models or {}).get(name)
    if entry is not None and entry.gate is not None:
        return gate_from_config(entry.gate, task)
    return default_gate(task)


def read_data(data: Any) -> Any:
    """A DataFrame from a DataFrame, a data version (``NAME@V``) or a CSV/Parquet path."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_file():
            from ferryml.data.workspace import read_table

            return read_table(path)
        import ferryml.data

        loaded = ferryml.data.load(str(data), context="evaluation")
        if isinstance(loaded, pd.DataFrame):
            return loaded
    from ferryml.errors import InvalidArgument

    raise InvalidArgument(
        f"Evaluation data {data!r} is not a DataFrame, a table data version (NAME@V) or a "
        "CSV/Parquet file."
    )
