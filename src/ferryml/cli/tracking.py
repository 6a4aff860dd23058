"""``ferry init``, ``ferry experiments …`` and ``ferry runs …``."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.errors import NotFound
from ferryml.store.entities import Experiment, ViewType
from ferryml.tracking.client import FerryClient

experiments = typer.Typer(
    help="List, create, delete and restore experiments.", no_args_is_help=True
)
runs = typer.Typer(help="List, show, compare, delete and restore runs.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ViewOption = Annotated[
    ViewType,
    typer.Option("--view", help="Which to show by lifecycle stage.", case_sensitive=False),
]


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
def experiments_list(
    ctx: typer.Context, view: ViewOption = ViewType.ACTIVE_ONLY, json: JsonFlag = False
) -> None:
    """List experiments (deleted ones with --view deleted_only or all)."""
    found = _client(ctx).list_experiments(view)
    if json:
        render.print_json(found)
        return
    render.table(
        None,
        ["id", "name", "created", *(["stage"] if view is not ViewType.ACTIVE_ONLY else [])],
        [
            (
                e.experiment_id,
                e.name,
                render.when(e.creation_time),
                *([e.lifecycle_stage] if view is not ViewType.ACTIVE_ONLY else []),
            )
            for e in found
        ],
    )


@experiments.command("delete")
def experiments_delete(ctx: typer.Context, name: str) -> None:
    """Delete an experiment and its runs; `ferry experiments restore` undoes it until
    `ferry gc` removes them for good."""
    client = _client(ctx)
    experiment = _experiment_named(client, name)
    client.delete_experiment(experiment.experiment_id)
    render.console.print(
        f"Deleted experiment {name!r} and its runs. Restore them with "
        f"`ferry experiments restore {name}`; `ferry gc` removes them for good."
    )


@experiments.command("restore")
def experiments_restore(ctx: typer.Context, name: str) -> None:
    """Restore a deleted experiment and its runs."""
    client = _client(ctx)
    experiment = _experiment_named(client, name)
    client.restore_experiment(experiment.experiment_id)
    render.console.print(f"Restored experiment {name!r} and its runs.")


def _experiment_named(client: FerryClient, name: str) -> Experiment:
    found = client.get_experiment_by_name(name)
    if found is None:
        raise NotFound(f"Experiment {name!r} not found. See `ferry experiments list --view all`.")
    return found


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
    view: ViewOption = ViewType.ACTIVE_ONLY,
    json: JsonFlag = False,
) -> None:
    """List runs, filtered and ordered (deleted ones with --view deleted_only or all)."""
    client = _client(ctx)
    ids = _experiment_ids(client, experiment, view)
    page = client.search_runs(ids, filter_string, order_by or [], max_results, page_token, view)
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


def _experiment_ids(
    client: FerryClient, names: list[str] | None, view: ViewType = ViewType.ACTIVE_ONLY
) -> list[str]:
    if not names:
        # Deleted runs of active experiments count too, when asked for.
        shown = ViewType.ACTIVE_ONLY if view is ViewType.ACTIVE_ONLY else ViewType.ALL
        return [e.experiment_id for e in client.list_experiments(shown)]
    ids = []
    for name in names:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise NotFound(f"Experiment {name!r} not found. See `ferry experiments list`.")
        ids.append(found.experiment_id)
    return ids


@runs.command("delete")
def runs_delete(ctx: typer.Context, run_ids: Annotated[list[str], typer.Argument()]) -> None:
    """Delete runs; `ferry runs restore` undoes it until `ferry gc` removes them for good."""
    client = _client(ctx)
    for run_id in run_ids:
        client.delete_run(run_id)
    shown = " ".join(run_ids)
    render.console.print(
        f"Deleted {_runs_word(run_ids)} {shown}. Restore with `ferry runs restore {shown}`; "
        "`ferry gc` removes deleted runs for good."
    )


@runs.command("restore")
def runs_restore(ctx: typer.Context, run_ids: Annotated[list[str], typer.Argument()]) -> None:
    """Restore deleted runs."""
    client = _client(ctx)
    for run_id in run_ids:
        client.restore_run(run_id)
    render.console.print(f"Restored {_runs_word(run_ids)} {' '.join(run_ids)}.")


def _runs_word(run_ids: list[str]) -> str:
    return "run" if len(run_ids) == 1 else "runs"


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
