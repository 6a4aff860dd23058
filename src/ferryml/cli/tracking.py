"""``ferry init``, ``ferry experiments …`` and ``ferry runs …``."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.errors import NotFound
from ferryml.tracking.client import FerryClient

experiments = typer.Typer(help="List and create experiments.", no_args_is_help=True)
runs = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _client(ctx: typer.Context) -> FerryClient:
    settings = settings_of(ctx)
    return FerryClient(settings)


def init(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Create the store (or upgrade it) and the artifact folder."""
    client = _client(ctx)
    client.store, client.artifacts  # noqa: B018 - opening them creates them
    client.close()
    s = client.settings
    if json:
        render.print_json({"home": str(s.home), "store": s.store_url, "artifacts": s.artifacts_url})
        return
    render.console.print(f"ferryml store ready: {s.store_url}\nartifacts: {s.artifacts_url}")


@experiments.command("list")
def experiments_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List experiments."""
    found = _client(ctx).list_experiments()
    if json:
        render.print_json(found)
        return
    render.table(
        None,
        ["id", "name", "created"],
        [(e.experiment_id, e.name, render.when(e.creation_time)) for e in found],
    )


@experiments.command("create")
def experiments_create(ctx: typer.Context, name: str, json: JsonFlag = False) -> None:
    """Create an experiment."""
    experiment_id = _client(ctx).create_experiment(name)
    if json:
        render.print_json({"experiment_id": experiment_id, "name": name})
    else:
        render.console.print(f"Created experiment {name!r} (id {experiment_id}).")


@runs.command("list")
def runs_list(
    ctx: typer.Context,
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="Experiment name (repeatable; default: all)."),
    ] = None,
    filter_string: Annotated[
        str,
        typer.Option("--filter", "-f", help="e.g. \"metrics.acc > 0.9 and params.model = 'rf'\""),
    ] = "",
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="e.g. 'metrics.acc DESC' (repeatable)."),
    ] = None,
    max_results: Annotated[int, typer.Option("--max-results", "-n")] = 100,
    page_token: Annotated[str | None, typer.Option(help="Token printed by the last page.")] = None,
    json: JsonFlag = False,
) -> None:
    """List runs, filtered and ordered."""
    client = _client(ctx)
    ids = _experiment_ids(client, experiment)
    page = client.search_runs(ids, filter_string, order_by or [], max_results, page_token)
    if json:
        render.print_json({"runs": page.runs, "next_page_token": page.token})
        return
    metric_keys = sorted({k for r in page.runs for k in r.data.metrics})[:6]
    render.table(
        None,
        ["run_id", "name", "status", "started", "duration", *metric_keys],
        [
            (
                r.info.run_id,
                r.info.run_name,
                r.info.status.value,
                render.when(r.info.start_time),
                render.duration(r.info.start_time, r.info.end_time),
                *(
                    render.number(r.data.metrics[k]) if k in r.data.metrics else ""
                    for k in metric_keys
                ),
            )
            for r in page.runs
        ],
    )
    if page.token:
        render.console.print(f"More runs: --page-token {page.token}")


def _experiment_ids(client: FerryClient, names: list[str] | None) -> list[str]:
    if not names:
        return [e.experiment_id for e in client.list_experiments()]
    ids = []
    for name in names:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise NotFound(f"Experiment {name!r} not found. See `ferry experiments list`.")
        ids.append(found.experiment_id)
    return ids


@runs.command("show")
def runs_show(ctx: typer.Context, run_id: str, json: JsonFlag = False) -> None:
    """Show one run: its status, params, metrics, tags, inputs and artifacts."""
    client = _client(ctx)
    run = client.get_run(run_id)
    artifacts = client.list_artifacts(run_id)
    if json:
        render.print_json({"run": run, "artifacts": artifacts})
        return
    i = run.info
    render.console.print(
        f"[bold]{i.run_name}[/bold] {i.run_id}  {i.status.value}  experiment {i.experiment_id}"
        f"  started {render.when(i.start_time)}  {render.duration(i.start_time, i.end_time)}"
    )
    if i.failure:
        render.console.print(f"failure: {i.failure.strip().splitlines()[-1]}")
    render.table("params", ["key", "value"], sorted(run.data.params.items()))
    render.table(
        "metrics",
        ["key", "value"],
        [(k, render.number(v)) for k, v in sorted(run.data.metrics.items())],
    )
    render.table("tags", ["key", "value"], sorted(run.data.tags.items()))
    if run.inputs:
        render.table(
            "inputs",
            ["dataset", "version", "context"],
            [(x.name, x.version, x.context) for x in run.inputs],
        )
    render.table(
        "artifacts",
        ["path", "size", "digest"],
        [(a.path, a.size, a.digest[:12]) for a in artifacts],
    )


@runs.command("compare")
def runs_compare(ctx: typer.Context, run_ids: list[str], json: JsonFlag = False) -> None:
    """Compare runs side by side; rows that differ are marked."""
    from ferryml.tracking.compare import compare_runs

    client = _client(ctx)
    comparison = compare_runs([client.get_run(r) for r in run_ids])
    if json:
        render.print_json(comparison)
        return
    render.table(
        None,
        ["", "key", *comparison.run_names],
        [
            (
                "*" if row.differs else "",
                f"{row.kind}s.{row.key}",
                *(
                    "" if v is None else render.number(v) if isinstance(v, float) else v
                    for v in row.values
                ),
            )
            for row in comparison.rows
        ],
    )


@runs.command("history")
def runs_history(ctx: typer.Context, run_id: str, key: str, json: JsonFlag = False) -> None:
    """Print every logged value of one metric of a run."""
    history = _client(ctx).get_metric_history(run_id, key)
    if json:
        render.print_json(history)
        return
    render.table(
        f"{key} of {run_id}",
        ["step", "value", "time"],
        [(m.step, render.number(m.value), render.when(m.timestamp)) for m in history],
    )
