"""The fluent tracking API: ``with ferryml.start_run(): ferryml.log_metric(...)``.

The active runs form a stack per thread (a context variable), and every call goes through
one process-wide ``FerryClient``, created on first use from the resolved settings.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import threading
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any

from ferryml.config import Settings
from ferryml.errors import Conflict, InvalidArgument, NotFound
from ferryml.store.entities import (
    DatasetVersion,
    Experiment,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunStatus,
)
from ferryml.tracking.client import FerryClient

DEFAULT_EXPERIMENT = "Default"


_override: ContextVar[FerryClient | None] = ContextVar("ferryml_client", default=None)


@functools.lru_cache(maxsize=8)
def _client_for(settings: Settings) -> FerryClient:
    client = FerryClient(settings)
    atexit.register(client.close)  # write what is pending and release the connections
    return client


@contextlib.contextmanager
def bound_run(run_id: str, settings: Settings) -> Iterator[None]:
    """Make ``run_id`` the active run of this thread, on the store of ``settings``, for
    the code inside: a pipeline step's ``ferryml.log_metric`` goes to the step's run."""
    client = _client_for(settings)
    active = ActiveRun(client.get_run(run_id), client)
    client_token = _override.set(client)
    run_token = _active.set((active,))
    try:
        yield
    finally:
        client.flush()
        _active.reset(run_token)
        _override.reset(client_token)


class _Fluent:
    """The fluent API's process state: its client and the chosen experiment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: FerryClient | None = None
        self.experiment_id: str | None = None

    def get_client(self) -> FerryClient:
        override = _override.get()
        if override is not None:
            return override
        if self.client is None:
            with self.lock:
                if self.client is None:
                    self.client = FerryClient()
        return self.client


_fluent = _Fluent()
_active: ContextVar[tuple[ActiveRun, ...]] = ContextVar("ferryml_active_runs", default=())


class ActiveRun:
    """A started run; as a context manager it ends the run on exit: FINISHED, FAILED when
    an exception escapes (its traceback is recorded), KILLED on Ctrl-C."""

    def __init__(self, run: Run, client: FerryClient) -> None:
        self._run = run
        self._client = client
        self.run_id = run.info.run_id
        # the ferry.autolog_torch handles logging here, by name: two must not share one
        self._autologs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    @property
    def info(self) -> RunInfo:
        return self._run.info

    @property
    def data(self) -> RunData:
        return self._client.get_run(self.run_id).data

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            end_run()
        elif issubclass(exc_type, KeyboardInterrupt):
            end_run(RunStatus.KILLED, failure="Interrupted (KeyboardInterrupt).")
        else:
            end_run(
                RunStatus.FAILED,
                failure="".join(traceback.format_exception(exc_type, exc, tb))[-8000:],
            )

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id} name={self.info.run_name!r}>"


def configure(
    *,
    home: str | Path | None = None,
    store: str | None = None,
    artifacts: str | None = None,
) -> Settings:
    """Point the fluent API at another store (like ``mlflow.set_tracking_uri``).

    Values not given come from ``FERRY_*`` variables and ``ferry.yaml`` as usual. Pending
    values of the previous store are written first.
    """
    settings = Settings.resolve(home=home, store=store, artifacts=artifacts)
    with _fluent.lock:
        if _fluent.client is not None:
            _fluent.client.close()
        _fluent.client = FerryClient(settings)
        _fluent.experiment_id = None
    _active.set(())
    return settings


def set_experiment(name: str) -> Experiment:
    """Make ``name`` the experiment of runs started from now on, creating it if needed."""
    client = _fluent.get_client()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        from ferryml.errors import AlreadyExists

        # Another process may create it between our look-up and our insert.
        with contextlib.suppress(AlreadyExists):
            client.create_experiment(name)
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
    if experiment.lifecycle_stage != "active":
        raise NotFound(f"Experiment {name!r} was deleted; restore it or choose another name.")
    _fluent.experiment_id = experiment.experiment_id
    return experiment


def create_experiment(name: str, tags: Mapping[str, str] | None = None) -> str:
    return _fluent.get_client().create_experiment(name, tags)


def get_experiment_by_name(name: str) -> Experiment | None:
    return _fluent.get_client().get_experiment_by_name(name)


def _experiment_id() -> str:
    if _fluent.experiment_id is None:
        set_experiment(os.environ.get("FERRY_EXPERIMENT") or DEFAULT_EXPERIMENT)
    assert _fluent.experiment_id is not None
    return _fluent.experiment_id


def start_run(
    run_id: str | None = None,
    *,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: Mapping[str, Any] | None = None,
    description: str = "",
    parent_run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active run.

    Example:
        >>> with ferryml.start_run(run_name="baseline"):
        ...     ferryml.log_param("model", "rf")

    Raises:
        Conflict: a run is active already and ``nested`` is false.
    """
    client = _fluent.get_client()
    stack = _active.get()
    if stack and not nested:
        raise Conflict(
            f"Run {stack[-1].run_id} is active already. End it with ferryml.end_run(), or "
            "start a child run with start_run(nested=True)."
        )
    if run_id is not None:
        run = client.get_run(run_id)
        client.resume_run(run_id)
    else:
        parent = parent_run_id or (stack[-1].run_id if stack and nested else None)
        run = client.create_run(
            experiment_id or _experiment_id(),
            run_name=run_name,
            tags=tags,
            description=description,
            parent_run_id=parent,
        )
    active = ActiveRun(run, client)
    _active.set((*stack, active))
    return active


def end_run(status: str | RunStatus = RunStatus.FINISHED, failure: str | None = None) -> None:
    """End the active run; does nothing when no run is active."""
    stack = _active.get()
    if not stack:
        return
    _active.set(stack[:-1])
    _fluent.get_client().set_terminated(stack[-1].run_id, status, failure=failure)


def active_run() -> ActiveRun | None:
    stack = _active.get()
    return stack[-1] if stack else None


def _run_id() -> str:
    stack = _active.get()
    if stack:
        return stack[-1].run_id
    # MLflow starts a run implicitly here; we do too, so notebook code keeps working.
    return start_run().run_id


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Log a metric value of the active run (at ``step``, default 0)."""
    stack = _active.get()
    run_id = stack[-1].run_id if stack else _run_id()
    _fluent.get_client().log_metric(run_id, key, value, timestamp, step)


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    _fluent.get_client().log_batch(
        _run_id(),
        metrics=[
            Metric(k, v, timestamp, step or 0)  # type: ignore[arg-type]
            for k, v in metrics.items()
        ],
    )


def log_param(key: str, value: Any) -> None:
    """Log a param of the active run; a param cannot change once logged."""
    _fluent.get_client().log_batch(_run_id(), params={key: value})


def log_params(params: Mapping[str, Any]) -> None:
    _fluent.get_client().log_batch(_run_id(), params=params)


def set_tag(key: str, value: Any) -> None:
    _fluent.get_client().log_batch(_run_id(), tags={key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    _fluent.get_client().log_batch(_run_id(), tags=tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _fluent.get_client().log_artifact(_run_id(), local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _fluent.get_client().log_artifacts(_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    _fluent.get_client().log_text(_run_id(), text, artifact_file)


def log_dict(dictionary: Mapping[str, Any], artifact_file: str) -> None:
    _fluent.get_client().log_dict(_run_id(), dictionary, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> None:
    _fluent.get_client().log_figure(_run_id(), figure, artifact_file)


def log_input(
    name: str | DatasetVersion,
    version: str | int | None = None,
    digest: str = "",
    context: str = "training",
) -> None:
    """Record that the active run read a dataset version: a ``DatasetVersion`` (from
    ``ferryml.data.add``) or a name and version."""
    if isinstance(name, DatasetVersion):
        dataset, version, digest = name.name, name.version, name.manifest_digest
    else:
        dataset = name
    if version is None:
        raise InvalidArgument(f"log_input({dataset!r}) needs the version that was read.")
    _fluent.get_client().log_input(_run_id(), dataset, version, digest, context)


def get_run(run_id: str) -> Run:
    return _fluent.get_client().get_run(run_id)


def delete_run(run_id: str) -> None:
    """Mark a run deleted; ``restore_run`` undoes it until ``ferry gc`` removes it."""
    _fluent.get_client().delete_run(run_id)


def restore_run(run_id: str) -> None:
    """Make a deleted run active again."""
    _fluent.get_client().restore_run(run_id)


def delete_experiment(experiment_id: str) -> None:
    """Mark an experiment and its runs deleted; ``restore_experiment`` undoes it."""
    _fluent.get_client().delete_experiment(experiment_id)
    if _fluent.experiment_id == experiment_id:
        _fluent.experiment_id = None


def restore_experiment(experiment_id: str) -> None:
    """Make a deleted experiment and its runs active again."""
    _fluent.get_client().restore_experiment(experiment_id)


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str | None = "",
    order_by: Sequence[str] | str | None = None,
    max_results: int = 1000,
    *,
    experiment_names: Sequence[str] | None = None,
    output_format: str = "list",
    run_view_type: str = "active_only",
) -> Any:
    """Search runs, as a list of ``Run`` (default) or a pandas DataFrame.

    Example:
        >>> ferryml.search_runs(experiment_names=["churn"],
        ...                     filter_string="metrics.auc > 0.9", order_by=["metrics.auc DESC"])
    """
    if output_format not in ("list", "pandas"):
        raise InvalidArgument(f"output_format must be 'list' or 'pandas'; got {output_format!r}.")
    client = _fluent.get_client()
    ids = list(experiment_ids or [])
    for name in experiment_names or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise NotFound(f"Experiment {name!r} not found. See `ferry experiments list`.")
        ids.append(experiment.experiment_id)
    if not ids:
        ids = [_experiment_id()]
    runs: list[Run] = []
    token = None
    while len(runs) < max_results:
        page = client.search_runs(
            ids,
            filter_string,
            order_by,
            min(max_results - len(runs), 50_000),
            token,
            run_view_type,
        )
        runs += page.runs
        token = page.token
        if token is None:
            break
    if output_format == "pandas":
        from ferryml.tracking._frames import runs_frame

        return runs_frame(runs)
    return runs
