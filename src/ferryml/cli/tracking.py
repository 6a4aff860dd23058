"""``ferry init``, ``ferry experiments …`` and ``ferry runs …``."""

from __future__ import annotations

from typing import Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.config import redact_url
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
        render.print_json(
            {
                "root": str(s.root),
                "home": str(s.home),
                "store": redact_url(s.store_url),
                "artifacts": redact_url(s.artifacts_url),
            }
        )
        return
    render.console.print(
        f"ferryml store ready: {redact_url(s.store_url)}\nartifacts: "
        f"{redact_url(s.artifacts_url)}\nproject: {s.root}"
    )


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
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--columns",
            "-c",
            help="Columns to show: params.KEY, metrics.KEY, tags.KEY, comma-separated "
            "(default: the first six metrics).",
        ),
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="List child runs too, not only top-level runs.")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """List top-level runs, filtered and ordered, with their child runs counted (--all
    lists them too; deleted runs with --view deleted_only or all)."""
    from ferryml.tracking.listing import cell, list_runs

    found = list_runs(
        _client(ctx),
        experiment or [],
        filter_string,
        order_by or [],
        max_results,
        page_token,
        view,
        children=all_runs,
        columns=columns or [],
    )
    if json:
        render.print_json(
            {"runs": found.runs, "child_runs": found.children, "next_page_token": found.token}
        )
        return
    several, folded = found.several_experiments, bool(found.children)
    render.table(
        None,
        [
            "run_id",
            "name",
            *(["experiment"] if several else []),
            "status",
            "started",
            "duration",
            *(["children"] if folded else []),
            *found.columns,
        ],
        [
            (
                r.info.run_id,
                r.info.run_name,
                *([found.experiments.get(r.info.experiment_id, "")] if several else []),
                r.info.status.value,
                render.when(r.info.start_time),
                render.duration(r.info.start_time, r.info.end_time),
                *([found.children.get(r.run_id, "")] if folded else []),
                *(_shown(cell(r, c)) for c in found.columns),
            )
            for r in found.runs
        ],
    )
    if found.token:
        render.console.print(f"More runs: --page-token {found.token}")
    if folded:
        render.console.print("Child runs are folded into their parents; --all lists them.")


def _shown(value: str | float | None) -> str:
    if value is None:
        return ""
    return render.number(value) if isinstance(value, float) else value


@runs.command("delete")
def runs_delete(ctx: typer.Context, run_ids: Annotated[list[str], typer.Argument()]) -> None:
    """Delete runs; `ferry runs restore` undoes it until `ferry gc` removes them for good."""
    client = _client(ctx)
    children = sum(len(client.delete_run(run_id)) for run_id in run_ids)
    shown = " ".join(run_ids)
    render.console.print(
        f"Deleted {_runs_word(run_ids)} {shown}{_with_children(children)}. Restore with "
        f"`ferry runs restore {shown}`; `ferry gc` removes deleted runs for good."
    )


@runs.command("restore")
def runs_restore(ctx: typer.Context, run_ids: Annotated[list[str], typer.Argument()]) -> None:
    """Restore deleted runs."""
    client = _client(ctx)
    children = sum(len(client.restore_run(run_id)) for run_id in run_ids)
    shown = " ".join(run_ids)
    render.console.print(f"Restored {_runs_word(run_ids)} {shown}{_with_children(children)}.")


def _runs_word(run_ids: list[str]) -> str:
    return "run" if len(run_ids) == 1 else "runs"


def _with_children(count: int) -> str:
    if not count:
        return ""
    return f" and {count} child run{'' if count == 1 else 's'}"


@runs.command("show")
def runs_show(ctx: typer.Context, run_id: str, json: JsonFlag = False) -> None:
    """Show one run: its status, params, metrics, tags, inputs and artifacts."""
    client = _client(ctx)
    run = client.get_run(run_id)
    artifacts = client.list_artifacts(run_id)
    experiment = client.get_experiment(run.info.experiment_id).name
    if json:
        render.print_json({"run": run, "experiment": experiment, "artifacts": artifacts})
        return
    i = run.info
    render.console.print(
        f"[bold]{i.run_name}[/bold] {i.run_id}  {i.status.value}  experiment {experiment!r} "
        f"(id {i.experiment_id})"
        f"  started {render.when(i.start_time)}  {render.duration(i.start_time, i.end_time)}"
    )
    if i.lifecycle_stage == "deleted":
        render.console.print(
            f"deleted: restore it with `ferry runs restore {i.run_id}`; `ferry gc` removes it "
            "for good"
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
        [
            "",
            "key",
            *(
                f"{n} {i[:8]}"
                for n, i in zip(comparison.run_names, comparison.run_ids, strict=True)
            ),
        ],
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
