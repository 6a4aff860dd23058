"""Steps and pipelines as plain Python: ``@step`` functions called inside a ``@pipeline``
function do not run; each call becomes a node of a DAG, and passing one step's result to
another makes an edge. Outside a pipeline a step is just its function."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ferryml.errors import InvalidArgument, NotFound

__all__ = ["Graph", "Node", "Output", "Pipeline", "Step", "load_target", "pipeline", "step"]


@dataclass(frozen=True)
class Output:
    """The future result of a node, to pass to other steps."""

    node: str

    def __repr__(self) -> str:
        return f"<output of step {self.node}>"


@dataclass
class Node:
    id: str
    step: Step
    inputs: dict[str, str]  # argument -> upstream node id
    params: dict[str, Any]  # argument -> literal value

    @property
    def upstream(self) -> list[str]:
        return sorted(set(self.inputs.values()))


@dataclass
class Graph:
    """The nodes of one pipeline run, and the output(s) the pipeline returns."""

    nodes: dict[str, Node] = field(default_factory=dict)
    result: Any = None  # Output, a tuple/dict of Outputs, or None

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output:
        try:
            bound = inspect.signature(step.fn).bind(*args, **kwargs)
        except TypeError as e:
            raise InvalidArgument(f"Step {step.name!r} was called wrongly: {e}.") from e
        bound.apply_defaults()
        inputs, params = {}, {}
        for name, value in bound.arguments.items():
            if isinstance(value, Output):
                inputs[name] = value.node
            elif _holds_output(value):
                raise InvalidArgument(
                    f"Step {step.name!r} got step outputs inside a {type(value).__name__} for "
                    f"argument {name!r}; pass each output as its own argument."
                )
            else:
                params[name] = value
        node_id = step.name
        n = 1
        while node_id in self.nodes:
            n += 1
            node_id = f"{step.name}_{n}"
        self.nodes[node_id] = Node(node_id, step, inputs, params)
        return Output(node_id)

    def order(self) -> list[str]:
        """Node ids, each after its inputs.

        Raises:
            InvalidArgument: the graph has a cycle or an input that no node produces.
        """
        done: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(node_id: str, path: list[str]) -> None:
            if state.get(node_id) == 2:
                return
            if state.get(node_id) == 1:
                cycle = " -> ".join([*path[path.index(node_id) :], node_id])
                raise InvalidArgument(f"The pipeline has a cycle: {cycle}. Steps must form a DAG.")
            if node_id not in self.nodes:
                raise InvalidArgument(
                    f"Step {path[-1]!r} takes the output of {node_id!r}, which is not a step "
                    "of this pipeline."
                )
            state[node_id] = 1
            for up in self.nodes[node_id].upstream:
                visit(up, [*path, node_id])
            state[node_id] = 2
            done.append(node_id)

        for node_id in self.nodes:
            visit(node_id, [])
        return done


def _holds_output(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return any(isinstance(v, Output) or _holds_output(v) for v in value)
    return False


_tracing: ContextVar[Graph | None] = ContextVar("ferryml_tracing", default=None)


@dataclass(frozen=True)
class StepOptions:
    cache: bool = True
    retries: int = 0
    backoff: float = 1.0  # seconds before the first retry; doubled for each next one
    timeout: float | None = None  # seconds per attempt
    validate: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # argument -> checks
    deps: tuple[str, ...] = ()  # files, folders or data versions (NAME@V) the step reads


class Step:
    """A function marked with ``@step``."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        self.fn = fn
        self.options = options
        self.name = fn.__name__
        functools.update_wrapper(self, fn)

    @property
    def ref(self) -> str:
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = _tracing.get()
        if graph is None:
            return self.fn(*args, **kwargs)
        return graph.add(self, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # Workers import the step by name; pickling the wrapped function itself would fail
        # because the module attribute is this object, not the function.
        return (_import_step, (self.fn.__module__, self.fn.__qualname__))

    def __repr__(self) -> str:
        return f"<step {self.ref}>"


def _import_step(module: str, qualname: str) -> Step:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def step(
    fn: Callable[..., Any] | None = None,
    *,
    cache: bool = True,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    validate: Mapping[str, Sequence[Any]] | None = None,
    deps: Sequence[str] = (),
) -> Any:
    """Mark a function as a pipeline step.

    Args:
        cache: reuse the output when code, inputs, params and ``deps`` are unchanged.
        retries: attempts after the first failure, waiting ``backoff`` seconds, doubling.
        timeout: seconds an attempt may take.
        validate: expectations (``ferryml.data``) an input DataFrame must pass, by argument.
        deps: files, folders or data versions (``NAME@V``) the step reads on its own.

    Example:
        >>> @step(retries=2)
        ... def clean(frame): return frame.dropna()
    """
    if retries < 0 or backoff < 0 or (timeout is not None and timeout <= 0):
        raise InvalidArgument("retries and backoff must be >= 0 and timeout > 0.")
    options = StepOptions(cache, retries, backoff, timeout, dict(validate or {}), tuple(deps))
    if fn is None:
        return lambda f: Step(f, options)
    return Step(fn, options)


class Pipeline:
    """A function marked with ``@pipeline``: calls steps; its parameters are the pipeline's."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def ref(self) -> str:
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full parameters of a run: ``params`` over the defaults.

        Raises:
            InvalidArgument: an unknown or a missing parameter.
        """
        known = list(self.signature.parameters)
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidArgument(
                f"Pipeline {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {', '.join(known) or '(none)'}."
            )
        try:
            bound = self.signature.bind(**params)
        except TypeError as e:
            raise InvalidArgument(f"Pipeline {self.name!r}: {e}; pass it with --param.") from e
        bound.apply_defaults()
        return dict(bound.arguments)

    def trace(self, params: Mapping[str, Any]) -> Graph:
        graph = Graph()
        token = _tracing.set(graph)
        try:
            graph.result = self.fn(**self.bind(params))
        finally:
            _tracing.reset(token)
        return graph

    def __call__(self, **params: Any) -> Any:
        from ferryml.pipelines.engine import run_pipeline

        return run_pipeline(self, params)

    def __repr__(self) -> str:
        return f"<pipeline {self.ref}>"


def pipeline(fn: Callable[..., Any]) -> Pipeline:
    """Mark a function that calls steps as a pipeline; calling it runs the pipeline.

    Example:
        >>> @pipeline
        ... def training(lr: float = 0.1):
        ...     return train(clean(load()), lr=lr)
    """
    return Pipeline(fn)


def load_target(target: str) -> Pipeline:
    """The pipeline named ``module:name``.

    Raises:
        InvalidArgument: the target is malformed, its module cannot be imported, or the
            name is not a pipeline.
        NotFound: the module has no such name.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgument(
            f"Pipeline target {target!r} must look like module:pipeline, e.g. train:training."
        )
    # Like `python -m`: modules of the folder the command runs in are importable.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InvalidArgument(
            f"Cannot import module {module_name!r} for {target!r}: {e}. Run from the folder "
            "that holds it, or install it."
        ) from e
    found = getattr(module, attr, None)
    if found is None:
        raise NotFound(f"Module {module_name!r} has no {attr!r}. Check the pipeline name.")
    if not isinstance(found, Pipeline):
        raise InvalidArgument(
            f"{target!r} is not a pipeline (it is of type {type(found).__name__}): "
            "mark the function with @pipeline."
        )
    return found


@contextmanager
def no_tracing() -> Iterator[None]:
    token = _tracing.set(None)
    try:
        yield
    finally:
        _tracing.reset(token)
