"""``ferry pipeline …``: run, list and inspect pipelines."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.errors import InvalidArgument

pipelines = typer.Typer(help="Run pipelines; list and inspect their runs.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="A parameter, k=v (repeatable).")
]
ExecutorOption = Annotated[str, typer.Option(help="local, process or dask.")]
WorkersOption = Annotated[int | None, typer.Option(help="Worker processes (default: cores).")]
AddressOption = Annotated[
    str | None,
    typer.Option(help="Dask scheduler, tcp://host:8786 (default: a LocalCluster for the run)."),
]


def parse_params(items: list[str] | None) -> dict[str, str]:
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"Parameter {item!r} must look like name=value.")
        params[key.strip()] = value
    return params


def _progress(json: bool) -> Any:
    """A live line per step change for people; nothing for scripts."""
    if json:
        return None
    marks = {"RUNNING": "…", "FINISHED": "✓", "FAILED": "✗", "SKIPPED": "-", "RETRYING": "↻"}

    def show(event: Any) -> None:
        if event.status == "RUNNING" and event.attempt == 1:
            return
        cached = " (cached)" if event.cache == "hit" else ""
        retry = f" attempt {event.attempt}" if event.status == "RETRYING" else ""
        render.console.print(f"  {marks.get(event.status, '?')} {event.node}{cached}{retry}")

    return show


@pipelines.command("run")
def run(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="module:pipeline, e.g. train:training")],
    param: ParamOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    address: AddressOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step.")] = False,
    resume: Annotated[str | None, typer.Option(help="Resume this failed run.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment of the run.")] = None,
    json: JsonFlag = False,
) -> None:
    """Run a pipeline; exit 1 if a step failed, with its error and where its traceback is."""
    from ferryml.pipelines.engine import run_target

    result = run_target(
        target,
        parse_params(param),
        executor=executor,
        workers=workers,
        address=address,
        cache=not no_cache,
        resume=resume,
        settings=settings_of(ctx),
        experiment=experiment,
        on_event=_progress(json),
    )
    if json:
        render.print_json({"run_id": result.run_id, "status": result.status, "steps": result.steps})
    else:
        hits = sum(s.cache == "hit" for s in result.steps.values())
        render.console.print(
            f"{result.pipeline} {result.status}: run {result.run_id}, "
            f"{len(result.steps)} steps, {hits} from the cache"
        )
    if result.status != "FINISHED":
        print(f"error: {result.failure() or 'the run did not finish.'}", file=sys.stderr)
        raise typer.Exit(1)


@pipelines.command("runs")
def runs(
    ctx: typer.Context,
    max_results: Annotated[int, typer.Option("--max-results", "-n")] = 50,
    json: JsonFlag = False,
) -> None:
    """List pipeline runs, newest first."""
    from ferryml.pipelines.history import list_pipeline_runs
    from ferryml.tracking.client import FerryClient

    client = FerryClient(settings_of(ctx))
    ctx.call_on_close(client.close)
    found = list_pipeline_runs(client, max_results)
    if json:
        render.print_json(found)
        return
    render.table(
        None,
        ["run_id", "pipeline", "status", "started", "duration", "cached"],
        [
            (
                r.info.run_id,
                r.data.tags.get("ferry.pipeline", ""),
                r.info.status.value,
                render.when(r.info.start_time),
                render.duration(r.info.start_time, r.info.end_time),
                f"{r.data.metrics.get('steps_cached', 0):.0f}/{r.data.metrics.get('steps', 0):.0f}",
            )
            for r in found
        ],
    )


@pipelines.command("show")
def show(
    ctx: typer.Context,
    run_id: str,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Print failed steps' whole tracebacks.")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Show a pipeline run's DAG: each step's status, duration and cache use."""
    from ferryml.pipelines.history import describe_run
    from ferryml.tracking.client import FerryClient

    client = FerryClient(settings_of(ctx))
    ctx.call_on_close(client.close)
    view = describe_run(client, run_id)
    if json:
        render.print_json(view)
        return
    info = view.run.info
    render.console.print(
        f"[bold]{view.run.data.tags.get('ferry.pipeline')}[/bold] {info.run_id} {info.status.value}"
    )
    render.table(
        None,
        ["step", "after", "status", "duration", "cache"],
        [
            (
                s.node,
                ", ".join(s.upstream),
                s.status,
                "" if s.duration is None else f"{s.duration:.3f}s",
                s.cache,
            )
            for s in view.steps
        ],
    )
    for s in view.steps:
        if s.failure and s.status == "FAILED":
            text = s.failure.strip() if traceback else s.failure.strip().splitlines()[-1]
            render.console.print(f"{s.node}: {text}", markup=False, highlight=False)


@pipelines.command("sweep")
def sweep(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="module:pipeline")],
    metric: Annotated[str, typer.Option(help="The metric a step logs, to pick the best.")],
    grid: Annotated[list[str] | None, typer.Option(help="name=v1,v2,… (repeatable)")] = None,
    mode: Annotated[str, typer.Option(help="max or min")] = "max",
    param: ParamOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    address: AddressOption = None,
    json: JsonFlag = False,
) -> None:
    """Run a pipeline over a grid of parameters and report the best trial."""
    from ferryml.pipelines._dsl import load_target
    from ferryml.pipelines.engine import coerce_params
    from ferryml.pipelines.sweep import sweep as run_sweep

    pipeline = load_target(target)
    spaces: dict[str, list[Any]] = {}
    for item in grid or []:
        name, _, values = item.partition("=")
        spaces[name] = [coerce_params(pipeline, {name: v})[name] for v in values.split(",")]
    if not spaces:
        raise InvalidArgument("Give at least one --grid name=v1,v2.")
    result = run_sweep(
        pipeline,
        metric=metric,
        mode=mode,
        grid=spaces,
        params=coerce_params(pipeline, parse_params(param)),
        executor=executor,
        workers=workers,
        address=address,
        settings=settings_of(ctx),
    )
    if json:
        render.print_json(
            {
                "run_id": result.run_id,
                "best_params": result.best_params,
                "best_run_id": result.best_run_id,
                "best_value": result.best_value,
                "trials": [
                    {"params": p, "run_id": r.run_id, "status": r.status} for p, r in result.trials
                ],
            }
        )
        return
    render.console.print(
        f"sweep {result.run_id}: {len(result.trials)} trials; best "
        f"{metric} = {result.best_value} with {result.best_params}"
    )
