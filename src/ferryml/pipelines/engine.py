"""Running pipelines: trace the DAG, then start each step when its inputs are ready, from
the cache when nothing it depends on changed, with retries and timeouts; a failed step
stops its dependents while independent branches finish. Every pipeline run is a tracked
run with one child run per step."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.pipelines._code import code_digest
from ferryml.pipelines._dsl import Graph, Node, Output, Pipeline, load_target
from ferryml.pipelines._task import StepOutcome, StepTask
from ferryml.pipelines.executors import Executor, LocalExecutor, make_executor
from ferryml.store.entities import RunStatus
from ferryml.store.factory import open_artifact_store, open_sql_part
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
class StepState:
    node: str
    step: str
    status: str = "PENDING"  # PENDING RUNNING FINISHED FAILED SKIPPED
    cache: str = "miss"  # hit | miss | off
    attempts: int = 0
    duration: float = 0.0
    digest: str | None = None
    format: str | None = None
    run_id: str | None = None
    error: str | None = None
    cache_key: str | None = None


@dataclass(frozen=True)
class StepEvent:
    """What the progress display is told: a step changed state."""

    pipeline_run: str
    node: str
    status: str
    cache: str
    attempt: int


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
        return {n: _last_line(self.steps[n].error or "failed") for n in self.failed}

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
        if isinstance(target, Output):
            return load(target)
        if isinstance(target, tuple):
            return tuple(load(o) if isinstance(o, Output) else o for o in target)
        if isinstance(target, dict):
            return {k: load(o) if isinstance(o, Output) else o for k, o in target.items()}
        return target


@dataclass
class _Plan:
    """One pipeline run in flight."""

    pipeline: Pipeline
    graph: Graph
    run_id: str
    read_cache: bool
    order: list[str]
    states: dict[str, StepState] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    experiment_id: str = ""


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
    changed = {k: v for k, v in given.items() if k not in old or _text(v) != old[k]}
    if changed:  # a resume reruns what failed with the old values: new ones would be lost
        was = ", ".join(f"{k}={old.get(k, '(unset)')}" for k in changed)
        now = " ".join(f"-p {k}={_text(v)}" for k, v in changed.items())
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
) -> _Plan:
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
    client.log_batch(run_id, params={k: _text(v) for k, v in pipeline.bind(params).items()})
    dag = [
        {"id": n, "step": graph.nodes[n].step.name, "upstream": graph.nodes[n].upstream}
        for n in order
    ]
    client.log_dict(run_id, {"nodes": dag}, "pipeline/dag.json")
    states = {n: StepState(n, graph.nodes[n].step.name) for n in order}
    return _Plan(
        pipeline, graph, run_id, cache, order, states, experiment_id=run.info.experiment_id
    )


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


def _last_line(error: str) -> str:
    lines = error.strip().splitlines()
    return lines[-1] if lines else error


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text[:6000]


# -- the scheduler loop -------------------------------------------------------------------


@contextlib.contextmanager
def opened(
    executor: str | Executor, workers: int | None = None, address: str | None = None
) -> Iterator[Executor]:
    """The executor named (started now, stopped after), or the one given (left running)."""
    if not isinstance(executor, str):
        yield executor
        return
    pool = make_executor(executor, workers=workers, address=address)
    try:
        yield pool
    finally:
        pool.close()


def run_plans(
    client: FerryClient,
    settings: Settings,
    plans: list[_Plan],
    pool: Executor,
    *,
    on_event: Callable[[StepEvent], None] | None = None,
) -> None:
    """Drive every plan to its end on one executor (a sweep runs its trials side by side).
    Whatever happens, every plan's run ends: FAILED if it could not finish."""
    from ferryml.store.sql_pipelines import SqlStepCache

    cache = open_sql_part(settings, SqlStepCache)
    loop = _Loop(client, settings, cache, pool, on_event or (lambda e: None))
    try:
        loop.drive(plans)
    except BaseException as e:
        for plan in plans:
            for state in plan.states.values():
                if state.status in ("PENDING", "RUNNING"):
                    state.status, state.error = "FAILED", f"interrupted: {type(e).__name__}"
        raise
    finally:
        cache.close()
        for plan in plans:
            _finish_plan(client, plan)


class _Loop:
    def __init__(
        self,
        client: FerryClient,
        settings: Settings,
        cache: Any,
        pool: Executor,
        on_event: Callable[[StepEvent], None],
    ) -> None:
        self.client, self.settings, self.cache, self.pool = client, settings, cache, pool
        self.on_event = on_event
        self.inflight: dict[Any, tuple[_Plan, str, float]] = {}
        self.delayed: list[tuple[float, _Plan, str]] = []
        # A worker can enforce a timeout itself except in threads (Dask): watch from here.
        self.watch_timeouts = not isinstance(pool, LocalExecutor)

    def drive(self, plans: list[_Plan]) -> None:
        while True:
            for plan in plans:
                self._start_ready(plan)
            if not self.inflight and not self.delayed:
                return
            now = time.monotonic()
            due = [d for d in self.delayed if d[0] <= now]
            if due:
                self.delayed = [d for d in self.delayed if d[0] > now]
                for _, plan, node in due:
                    self._submit(plan, node)
                continue
            if not self.inflight:
                time.sleep(max(0.0, min(d[0] for d in self.delayed) - now))
                continue
            for handle in self.pool.wait(list(self.inflight), self._wait_time(now)):
                plan, node, _ = self.inflight.pop(handle)
                self._finished(plan, node, self.pool.outcome(handle))
            self._expire(time.monotonic())

    def _wait_time(self, now: float) -> float:
        limits = [1.0] + [d[0] - now for d in self.delayed]
        for plan, node, started in self.inflight.values():
            timeout = plan.graph.nodes[node].step.options.timeout
            if timeout is not None:
                limits.append(started + timeout + 0.5 - now)
        return max(0.01, min(limits))

    def _expire(self, now: float) -> None:
        if not self.watch_timeouts:
            return
        for handle, (plan, node, started) in list(self.inflight.items()):
            timeout = plan.graph.nodes[node].step.options.timeout
            if timeout is not None and now - started > timeout + 0.5:
                self.pool.abandon(handle)
                del self.inflight[handle]
                state = plan.states[node]
                self._finished(
                    plan,
                    node,
                    StepOutcome(
                        node,
                        duration=now - started,
                        error_kind="StepTimeout",
                        error=f"StepTimeout: the step ran longer than its timeout of {timeout:g} s",
                        attempt=state.attempts,
                    ),
                )

    def _start_ready(self, plan: _Plan) -> None:
        for node_id in plan.order:
            state = plan.states[node_id]
            if state.status != "PENDING":
                continue
            upstream = [plan.states[u] for u in plan.graph.nodes[node_id].upstream]
            if any(u.status in ("FAILED", "SKIPPED") for u in upstream):
                self._skip(plan, node_id, [u.node for u in upstream if u.status != "FINISHED"])
            elif all(u.status == "FINISHED" for u in upstream):
                self._start(plan, node_id)

    def _start(self, plan: _Plan, node_id: str) -> None:
        node = plan.graph.nodes[node_id]
        state = plan.states[node_id]
        inputs = {arg: _ref(plan.states[up]) for arg, up in node.inputs.items()}
        state.cache_key = cache_key(node, inputs, self.settings)
        state.status = "RUNNING"
        state.run_id = self._step_run(plan, node, inputs, state.cache_key)
        hit = (
            self.cache.get(state.cache_key) if node.step.options.cache and plan.read_cache else None
        )
        if hit is not None and hit.digest:
            state.cache, state.digest, state.format = "hit", hit.digest, hit.format
            self._copy_metrics(hit.run_id, state.run_id)
            self._done(plan, state, "FINISHED")
            return
        state.cache = "miss" if node.step.options.cache and plan.read_cache else "off"
        self._submit(plan, node_id)

    def _submit(self, plan: _Plan, node_id: str) -> None:
        node = plan.graph.nodes[node_id]
        state = plan.states[node_id]
        state.attempts += 1
        inputs = {arg: _ref(plan.states[up]) for arg, up in node.inputs.items()}
        assert state.run_id is not None
        task = StepTask(
            node_id,
            node.step,
            self.settings,
            state.run_id,
            inputs,
            dict(node.params),
            state.attempts,
        )
        self.on_event(StepEvent(plan.run_id, node_id, "RUNNING", state.cache, state.attempts))
        self.inflight[self.pool.submit(task)] = (plan, node_id, time.monotonic())

    def _finished(self, plan: _Plan, node_id: str, outcome: StepOutcome) -> None:
        state = plan.states[node_id]
        node = plan.graph.nodes[node_id]
        state.duration += outcome.duration
        assert state.run_id is not None
        for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            if text:
                self.client.log_text(state.run_id, text, f"logs/{name}-{outcome.attempt}.txt")
        if outcome.error is None:
            state.digest, state.format = outcome.digest, outcome.format
            if node.step.options.cache and outcome.digest and outcome.format:
                self.cache.put(
                    state.cache_key, node.step.name, outcome.digest, outcome.format, state.run_id
                )
            self._done(plan, state, "FINISHED")
        elif state.attempts <= node.step.options.retries:
            wait = node.step.options.backoff * 2 ** (state.attempts - 1)
            self.client.set_tag(
                state.run_id,
                f"ferry.attempt.{state.attempts}.error",
                (outcome.error_kind or "error"),
            )
            self.on_event(StepEvent(plan.run_id, node_id, "RETRYING", state.cache, state.attempts))
            self.delayed.append((time.monotonic() + wait, plan, node_id))
        else:
            state.error = outcome.error
            self._done(plan, state, "FAILED")

    def _done(self, plan: _Plan, state: StepState, status: str) -> None:
        state.status = status
        assert state.run_id is not None
        self.client.log_batch(
            state.run_id,
            tags={
                "ferry.cache": state.cache,
                "ferry.attempts": str(state.attempts),
                **(
                    {"ferry.output.digest": state.digest, "ferry.output.format": state.format or ""}
                    if state.digest
                    else {}
                ),
            },
        )
        self.client.log_metric(state.run_id, "duration_s", state.duration)
        self.client.set_terminated(state.run_id, status, failure=state.error)
        self.on_event(StepEvent(plan.run_id, state.node, status, state.cache, state.attempts))

    def _skip(self, plan: _Plan, node_id: str, because: list[str]) -> None:
        state = plan.states[node_id]
        state.status = "SKIPPED"
        state.error = f"skipped: upstream step(s) {', '.join(because)} did not finish"
        self.on_event(StepEvent(plan.run_id, node_id, "SKIPPED", state.cache, 0))

    def _step_run(
        self, plan: _Plan, node: Node, inputs: dict[str, tuple[str, str]], key: str
    ) -> str:
        run = self.client.create_run(
            plan.experiment_id,
            run_name=node.id,
            parent_run_id=plan.run_id,
            capture_environment=False,
            tags={
                "ferry.kind": "step",
                "ferry.step": node.step.name,
                "ferry.step.ref": node.step.ref,
                "ferry.cache_key": key,
                "ferry.inputs": json.dumps({a: d for a, (d, _) in inputs.items()}),
            },
        )
        if node.params:
            self.client.log_batch(
                run.info.run_id, params={k: _text(v) for k, v in node.params.items()}
            )
        return run.info.run_id

    def _copy_metrics(self, source: str | None, target: str) -> None:
        """A cache hit keeps what the original step logged (a sweep compares on it)."""
        if source is None:
            return
        try:
            metrics = dict(self.client.get_run(source).data.metrics)
        except Exception:  # noqa: BLE001 - the original run may be gone; the output is not
            return
        metrics.pop("duration_s", None)
        if metrics:
            _log_metrics(self.client, target, metrics)


def _log_metrics(client: FerryClient, run_id: str, metrics: Mapping[str, float]) -> None:
    from ferryml.store.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])


def _ref(state: StepState) -> tuple[str, str]:
    assert state.digest is not None and state.format is not None
    return state.digest, state.format


def _finish_plan(client: FerryClient, plan: _Plan) -> None:
    states = plan.states.values()
    failed = [s for s in states if s.status in ("FAILED", "SKIPPED")]
    metrics: dict[str, float] = {
        "steps": float(len(plan.states)),
        "steps_cached": float(sum(s.cache == "hit" for s in states)),
        "steps_failed": float(sum(s.status == "FAILED" for s in states)),
        "duration_s": time.monotonic() - plan.started,
    }
    for state in states:  # what steps logged, so runs of a pipeline compare on it
        if state.run_id is not None and state.status == "FINISHED":
            for key, value in client.get_run(state.run_id).data.metrics.items():
                if key != "duration_s":
                    metrics[key] = value
    _log_metrics(client, plan.run_id, metrics)
    if failed:
        summary = "; ".join(
            f"{s.node}: {_last_line(s.error) if s.error else s.status}" for s in failed
        )
        client.set_terminated(plan.run_id, "FAILED", failure=summary[:8000])
    else:
        client.set_terminated(plan.run_id, "FINISHED")


def _result(plan: _Plan, settings: Settings) -> PipelineResult:
    failed = any(s.status != "FINISHED" for s in plan.states.values())
    return PipelineResult(
        plan.run_id,
        plan.pipeline.name,
        "FAILED" if failed else "FINISHED",
        plan.states,
        plan.graph.result,
        settings,
    )


# -- cache keys ---------------------------------------------------------------------------


def cache_key(node: Node, inputs: dict[str, tuple[str, str]], settings: Settings) -> str:
    """Digest of the step's code (and the project code it calls), its inputs' digests, its
    params and its declared dependencies."""
    body = {
        "code": code_digest(node.step.fn),
        "inputs": {arg: digest for arg, (digest, _) in inputs.items()},
        "params": {k: _text(v) for k, v in node.params.items()},
        "deps": {dep: _dep_digest(dep, settings) for dep in node.step.options.deps},
    }
    return blake3.blake3(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _dep_digest(dep: str, settings: Settings) -> str:
    if dep == "env":
        from ferryml.tracking._environment import _packages

        return blake3.blake3(_packages().encode()).hexdigest()
    path = (settings.root / dep) if not Path(dep).is_absolute() else Path(dep)
    if path.exists():
        from ferryml.data import _files
        from ferryml.data._hashcache import HashCache

        files = list(_files.walk(path)) if path.is_dir() else [("", str(path), path.stat())]
        cache = HashCache(settings.home / "cache", settings.artifacts_url)
        try:
            digests = _files.hash_files(files, cache)
        finally:
            cache.close()
        return blake3.blake3(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    from ferryml.data.workspace import Workspace

    workspace = Workspace(settings)
    try:
        return workspace.version(dep).manifest_digest
    finally:
        workspace.close()
