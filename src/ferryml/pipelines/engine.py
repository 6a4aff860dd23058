"""Running pipelines: trace the DAG, record the pipeline run (one tracked run, with a
child run per step) and hand it to the loop (``_loop``) that runs its steps."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.pipelines._dsl import Output, Pipeline, load_target
from ferryml.pipelines._loop import (
    Plan,
    StepEvent,
    StepState,
    last_line,
    opened,
    run_plans,
    text_of,
)
from ferryml.pipelines.executors import Executor
from ferryml.store.entities import RunStatus
from ferryml.store.factory import open_artifact_store
from ferryml.tracking.client import FerryClient

__all__ = [
    "PipelineResult",
    "StepEvent",
    "StepState",
    "coerce_params",
    "run_pipeline",
    "run_target",
]

DEFAULT_EXPERIMENT = "pipelines"


@dataclass
class PipelineResult:
    run_id: str
    pipeline: str
    status: str
    steps: dict[str, StepState]
    result: Any = None
    settings: Settings | None = None

    @property
    def failed(self) -> list[str]:
        return [n for n, s in self.steps.items() if s.status == "FAILED"]

    def errors(self) -> dict[str, str]:
        """Each failed step's error: the last line of its traceback, which is whole on the
        step's run (``ferry pipeline show RUN --traceback``)."""
        return {n: last_line(self.steps[n].error or "failed") for n in self.failed}

    def failure(self) -> str:
        """One line: the steps that failed, why, and where their tracebacks are; "" when
        none failed."""
        errors = self.errors()
        if not errors:
            return ""
        why = "; ".join(f"step {n!r} failed: {e}" for n, e in errors.items())
        return f"{why}. See the traceback: `ferry pipeline show {self.run_id} --traceback`."

    def output(self, node: str | None = None) -> Any:
        """The value the pipeline returned (or step ``node``'s output), loaded from the
        artifact store after its digest is checked."""
        from ferryml.pipelines._serialize import loads

        assert self.settings is not None
        artifacts = open_artifact_store(self.settings)

        def load(output: Output) -> Any:
            state = self.steps[output.node]
            if state.digest is None or state.format is None:
                raise InvalidArgument(
                    f"Step {output.node!r} has no output: it {state.status.lower()}"
                    + (f"; {self.failure()}" if self.failed else ".")
                )
            return loads(artifacts.get_bytes(state.digest), state.format)

        target: Any = Output(node) if node is not None else self.result
        try:
            if isinstance(target, Output):
                return load(target)
            if isinstance(target, tuple):
                return tuple(load(o) if isinstance(o, Output) else o for o in target)
            if isinstance(target, dict):
                return {k: load(o) if isinstance(o, Output) else o for k, o in target.items()}
            return target
        finally:
            artifacts.close()


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | Executor = "local",
    workers: int | None = None,
    address: str | None = None,
    cache: bool = True,
    resume: str | None = None,
    settings: Settings | None = None,
    experiment: str | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
) -> PipelineResult:
    """Run ``pipeline`` with ``params`` and return what happened.

    Args:
        executor: ``local`` (in this process), ``process`` (a pool of ``workers``), ``dask``
            (``address``, or a LocalCluster), or an ``Executor``.
        cache: read the step cache (outputs are always written to it).
        resume: a failed pipeline run's id: run it again with its params, finished steps
            coming from the cache. ``params`` may repeat that run's values, not change them.

    Raises:
        InvalidArgument: unknown or missing params, a malformed DAG, params that differ
            from those of the run to resume.
    """
    settings = settings or Settings.resolve()
    client = FerryClient(settings)
    try:
        params = dict(params or {})
        if resume is not None:
            params = _resumed_params(client, pipeline, resume, params)
            cache = True
        pipeline.trace(params)  # bad params fail here, before anything is recorded
        with opened(executor, workers, address) as pool:
            resumed = {"ferry.resumed_from": resume} if resume else {}
            plans = [_start_plan(client, pipeline, params, cache, experiment, None, resumed)]
            run_plans(client, settings, plans, pool, on_event=on_event)
        return _result(plans[0], settings)
    finally:
        client.close()


def run_target(
    target: str, params: Mapping[str, Any] | None = None, **options: Any
) -> PipelineResult:
    """Run the pipeline named ``module:pipeline``; string params are converted to the
    types the pipeline's signature declares (as given on the command line)."""
    pipeline = load_target(target)
    return run_pipeline(pipeline, coerce_params(pipeline, params or {}), **options)


def coerce_params(pipeline: Pipeline, raw: Mapping[str, Any]) -> dict[str, Any]:
    converted = {}
    for name, value in raw.items():
        parameter = pipeline.signature.parameters.get(name)
        if parameter is None or not isinstance(value, str):
            converted[name] = value
            continue
        kind = parameter.annotation
        kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, kind)
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                converted[name] = value.lower() in ("true", "1", "yes")
            elif kind in (int, float, str):
                converted[name] = kind(value)
            else:
                converted[name] = json.loads(value) if value[:1] in "[{0123456789-" else value
        except ValueError as e:
            raise InvalidArgument(
                f"Parameter {name!r} of {pipeline.name!r} must be "
                f"{getattr(kind, '__name__', kind)}; got {value!r}."
            ) from e
    return converted


def _resumed_params(
    client: FerryClient, pipeline: Pipeline, run_id: str, given: Mapping[str, Any]
) -> dict[str, Any]:
    run = client.get_run(run_id)
    if run.data.tags.get("ferry.pipeline.ref") != pipeline.ref:
        raise InvalidArgument(
            f"Run {run_id} is not a run of pipeline {pipeline.ref}; resume it with its own."
        )
    if run.info.status is RunStatus.FINISHED:
        raise InvalidArgument(f"Run {run_id} finished; there is nothing to resume.")
    old = run.data.params
    changed = {k: v for k, v in given.items() if k not in old or text_of(v) != old[k]}
    if changed:  # a resume reruns what failed with the old values: new ones would be lost
        was = ", ".join(f"{k}={old.get(k, '(unset)')}" for k in changed)
        now = " ".join(f"-p {k}={text_of(v)}" for k, v in changed.items())
        raise InvalidArgument(
            f"Run {run_id} ran with {was}; a resume reruns it with the same params. Drop "
            f"--resume to start a new run with {now} (unchanged steps come from the cache)."
        )
    return coerce_params(pipeline, dict(old))


def _start_plan(
    client: FerryClient,
    pipeline: Pipeline,
    params: dict[str, Any],
    cache: bool,
    experiment: str | None,
    parent: str | None,
    tags: dict[str, str],
) -> Plan:
    graph = pipeline.trace(params)
    order = graph.order()
    experiment_id = _experiment(client, experiment or DEFAULT_EXPERIMENT)
    run = client.create_run(
        experiment_id,
        run_name=pipeline.name,
        parent_run_id=parent,
        tags={
            "ferry.kind": "pipeline",
            "ferry.pipeline": pipeline.name,
            "ferry.pipeline.ref": pipeline.ref,
            **{k: v for k, v in tags.items() if v},
        },
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params={k: text_of(v) for k, v in pipeline.bind(params).items()})
    dag = [
        {"id": n, "step": graph.nodes[n].step.name, "upstream": graph.nodes[n].upstream}
        for n in order
    ]
    client.log_dict(run_id, {"nodes": dag}, "pipeline/dag.json")
    states = {n: StepState(n, graph.nodes[n].step.name) for n in order}
    return Plan(pipeline, graph, run_id, cache, order, states, experiment_id=run.info.experiment_id)


def _experiment(client: FerryClient, name: str) -> str:
    from ferryml.errors import AlreadyExists

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except AlreadyExists:
            found = client.get_experiment_by_name(name)
    assert found is not None
    return found.experiment_id


def _result(plan: Plan, settings: Settings) -> PipelineResult:
    failed = any(s.status != "FINISHED" for s in plan.states.values())
    return PipelineResult(
        plan.run_id,
        plan.pipeline.name,
        "FAILED" if failed else "FINISHED",
        plan.states,
        plan.graph.result,
        settings,
    )
