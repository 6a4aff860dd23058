"""Driving pipeline runs: start each step when its inputs are ready, from the step cache
when nothing it depends on changed, with retries and timeouts; a failed step stops its
dependents while independent branches finish. ``engine`` plans the runs; this runs them."""

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
from ferryml.errors import StoreUnavailable
from ferryml.pipelines._code import code_digest
from ferryml.pipelines._dsl import Graph, Node, Pipeline
from ferryml.pipelines._task import StepOutcome, StepTask
from ferryml.pipelines.executors import Executor, LocalExecutor, make_executor
from ferryml.store.factory import open_step_cache
from ferryml.tracking.client import FerryClient

__all__ = ["Plan", "StepEvent", "StepState", "cache_key", "finish_plan", "opened", "run_plans"]


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
class Plan:
    """One pipeline run in flight."""

    pipeline: Pipeline
    graph: Graph
    run_id: str
    read_cache: bool
    order: list[str]
    states: dict[str, StepState] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    experiment_id: str = ""


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
    plans: list[Plan],
    pool: Executor,
    *,
    on_event: Callable[[StepEvent], None] | None = None,
) -> None:
    """Drive every plan to its end on one executor (a sweep runs its trials side by side).
    Whatever happens, every plan's run ends: FAILED if it could not finish."""
    cache = open_step_cache(settings)
    loop = _Loop(client, settings, cache, pool, on_event or (lambda e: None))
    try:
        loop.drive(plans)
    except BaseException as e:
        for plan in plans:
            for state in plan.states.values():
                if state.status in ("PENDING", "RUNNING"):
                    if state.status == "RUNNING" and state.run_id is not None:
                        _end(client, state.run_id, "FAILED", f"interrupted: {e}")
                    state.status, state.error = "FAILED", f"interrupted: {type(e).__name__}"
        raise
    finally:
        cache.close()
        for plan in plans:
            finish_plan(client, plan)


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
        self.inflight: dict[Any, tuple[Plan, str, float]] = {}
        self.delayed: list[tuple[float, Plan, str]] = []
        # A worker can enforce a timeout itself except in threads (Dask): watch from here.
        self.watch_timeouts = not isinstance(pool, LocalExecutor)

    def drive(self, plans: list[Plan]) -> None:
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

    def _start_ready(self, plan: Plan) -> None:
        for node_id in plan.order:
            state = plan.states[node_id]
            if state.status != "PENDING":
                continue
            upstream = [plan.states[u] for u in plan.graph.nodes[node_id].upstream]
            if any(u.status in ("FAILED", "SKIPPED") for u in upstream):
                self._skip(plan, node_id, [u.node for u in upstream if u.status != "FINISHED"])
            elif all(u.status == "FINISHED" for u in upstream):
                self._start(plan, node_id)

    def _start(self, plan: Plan, node_id: str) -> None:
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

    def _submit(self, plan: Plan, node_id: str) -> None:
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

    def _finished(self, plan: Plan, node_id: str, outcome: StepOutcome) -> None:
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

    def _done(self, plan: Plan, state: StepState, status: str) -> None:
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

    def _skip(self, plan: Plan, node_id: str, because: list[str]) -> None:
        state = plan.states[node_id]
        state.status = "SKIPPED"
        state.error = f"skipped: upstream step(s) {', '.join(because)} did not finish"
        self.on_event(StepEvent(plan.run_id, node_id, "SKIPPED", state.cache, 0))

    def _step_run(
        self, plan: Plan, node: Node, inputs: dict[str, tuple[str, str]], key: str
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
                run.info.run_id, params={k: text_of(v) for k, v in node.params.items()}
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


def finish_plan(client: FerryClient, plan: Plan) -> None:
    states = plan.states.values()
    failed = [s for s in states if s.status in ("FAILED", "SKIPPED")]
    metrics: dict[str, float] = {
        "steps": float(len(plan.states)),
        "steps_cached": float(sum(s.cache == "hit" for s in states)),
        "steps_failed": float(sum(s.status == "FAILED" for s in states)),
        "duration_s": time.monotonic() - plan.started,
    }
    with contextlib.suppress(StoreUnavailable):  # the run still ends, in the journal
        for state in states:  # what steps logged, so runs of a pipeline compare on it
            if state.run_id is not None and state.status == "FINISHED":
                for key, value in client.get_run(state.run_id).data.metrics.items():
                    if key != "duration_s":
                        metrics[key] = value
    _log_metrics(client, plan.run_id, metrics)
    if failed:
        summary = "; ".join(
            f"{s.node}: {last_line(s.error) if s.error else s.status}" for s in failed
        )
        _end(client, plan.run_id, "FAILED", summary[:8000])
    else:
        _end(client, plan.run_id, "FINISHED", None)


def _end(client: FerryClient, run_id: str, status: str, failure: str | None) -> None:
    """End a run even while the store is away: the journal keeps the end and writes it once
    the store is back, so no run is left RUNNING by an outage."""
    with contextlib.suppress(StoreUnavailable):
        client.set_terminated(run_id, status, failure=failure)


# -- cache keys ---------------------------------------------------------------------------


def cache_key(node: Node, inputs: dict[str, tuple[str, str]], settings: Settings) -> str:
    """Digest of the step's code (and the project code it calls), its inputs' digests, its
    params and its declared dependencies."""
    body = {
        "code": code_digest(node.step.fn),
        "inputs": {arg: digest for arg, (digest, _) in inputs.items()},
        "params": {k: text_of(v) for k, v in node.params.items()},
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


def last_line(error: str) -> str:
    lines = error.strip().splitlines()
    return lines[-1] if lines else error


def text_of(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text[:6000]
