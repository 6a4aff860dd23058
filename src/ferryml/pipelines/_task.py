"""What runs on a worker: one attempt of one step. Inputs come from the artifact store by
digest (checked), the output goes back to it, and the outcome says what happened."""

from __future__ import annotations

import contextlib
import io
import pickle
import signal
import sys
import sysconfig
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ferryml.config import Settings
from ferryml.pipelines import _serialize
from ferryml.pipelines._dsl import Step
from ferryml.store.factory import open_artifact_store


class StepTimeout(Exception):
    """The attempt ran past its step's timeout."""


@dataclass(frozen=True)
class StepTask:
    node: str
    step: Step
    settings: Settings
    run_id: str  # the step's run: what the step logs with ferryml goes there
    inputs: dict[str, tuple[str, str]]  # argument -> (digest, format)
    params: dict[str, Any]
    attempt: int = 1


@dataclass(frozen=True)
class StepOutcome:
    node: str
    digest: str | None = None
    format: str | None = None
    size: int = 0
    duration: float = 0.0
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # traceback text
    error_kind: str | None = None
    attempt: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def execute(task: StepTask) -> StepOutcome:
    """Run one attempt; never raises (a failure is an outcome)."""
    from ferryml.tracking.fluent import bound_run

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    artifacts = None
    try:
        artifacts = open_artifact_store(task.settings)
        kwargs = {
            name: _serialize.loads(artifacts.get_bytes(digest), fmt)
            for name, (digest, fmt) in task.inputs.items()
        }
        kwargs.update(task.params)
        _check_inputs(task.step, kwargs)
        with (
            bound_run(task.run_id, task.settings),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _deadline(task.step.options.timeout),
        ):
            value = task.step.fn(**kwargs)
        data, fmt = _serialize.dumps(value, task.node)
        blob = artifacts.put_bytes(data)
    except BaseException as e:  # noqa: BLE001 - the step's failure is reported, not raised
        if isinstance(e, (KeyboardInterrupt, SystemExit)) and not isinstance(e, StepTimeout):
            raise
        return StepOutcome(
            task.node,
            duration=time.perf_counter() - started,
            stdout=out.getvalue(),
            stderr=err.getvalue(),
            error="".join(traceback.format_exception(e))[-8000:],
            error_kind=type(e).__name__,
            attempt=task.attempt,
        )
    finally:
        if artifacts is not None:
            artifacts.close()  # a team server's connections
    return StepOutcome(
        task.node,
        blob.digest,
        fmt,
        blob.size,
        time.perf_counter() - started,
        out.getvalue(),
        err.getvalue(),
        attempt=task.attempt,
    )


# cloudpickle's set of modules pickled by value is global: one shipment at a time.
_shipping = threading.Lock()


def ship(task: StepTask) -> bytes:
    """``task`` as bytes for a Dask cluster. A step of the project (a module not installed,
    such as ``train.py`` beside ``ferry.yaml``) travels with its code, so a scheduler and
    workers that do not have the project's files can take it; an installed one by name."""
    import cloudpickle

    module = sys.modules.get(task.step.fn.__module__)
    by_value = module is not None and not _installed(module)

    class StepPickler(cloudpickle.Pickler):
        """Pickles a project's step with its function, not by the name a worker imports."""

        def reducer_override(self, obj: Any) -> Any:
            if by_value and isinstance(obj, Step):
                return Step, (obj.fn, obj.options)
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    with _shipping:
        if by_value:
            cloudpickle.register_pickle_by_value(module)
        try:
            StepPickler(buffer).dump(task)
        finally:
            if by_value:
                cloudpickle.unregister_pickle_by_value(module)
    return buffer.getvalue()


def execute_shipped(data: bytes) -> StepOutcome:
    """``execute`` of a task made by ``ship``."""
    return execute(pickle.loads(data))  # noqa: S301 - the driver's own task, not user bytes


def _installed(module: Any) -> bool:
    path = getattr(module, "__file__", None)
    if path is None:
        return True  # built in
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    return any(path.startswith(root) for root in roots)


def _check_inputs(step: Step, kwargs: dict[str, Any]) -> None:
    if not step.options.validate:
        return
    from ferryml.data.validation import validate

    for argument, expectations in step.options.validate.items():
        validate(kwargs[argument], expectations).raise_for_failures()


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Any:
    # A timer signal can only interrupt the main thread; elsewhere (Dask's worker threads)
    # the driver enforces the timeout by abandoning the attempt.
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise StepTimeout(f"the step ran longer than its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
