"""Runs as a table for people: top-level runs with their child runs counted, the columns
asked for (params, metrics, tags), and each run's experiment by name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ferryml.errors import InvalidArgument, NotFound
from ferryml.store.entities import Run, ViewType
from ferryml.tracking.client import FerryClient

__all__ = ["RunListing", "cell", "list_runs", "parse_columns"]

_PREFIXES = ("params", "metrics", "tags")
_IN_CHUNK = 500  # parent ids per query: databases cap the values one statement binds


@dataclass(frozen=True)
class RunListing:
    runs: list[Run]
    token: str | None
    children: dict[str, int]  # run id -> child runs (when folded)
    experiments: dict[str, str]  # experiment id -> name
    columns: tuple[str, ...]  # params.KEY, metrics.KEY or tags.KEY

    @property
    def several_experiments(self) -> bool:
        return len({r.info.experiment_id for r in self.runs}) > 1


def parse_columns(values: Sequence[str]) -> tuple[str, ...]:
    """``params.KEY``, ``metrics.KEY`` or ``tags.KEY`` items, comma-separated or repeated.

    Raises InvalidArgument.
    """
    found = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            prefix, dot, key = item.partition(".")
            if not dot or not key or prefix not in _PREFIXES:
                raise InvalidArgument(
                    f"Column {item!r} is not params.KEY, metrics.KEY or tags.KEY; "
                    "e.g. --columns params.lr,metrics.acc."
                )
            found.append(item)
    return tuple(found)


def list_runs(
    client: FerryClient,
    experiment_names: Sequence[str] = (),
    filter_string: str = "",
    order_by: Sequence[str] = (),
    max_results: int = 100,
    page_token: str | None = None,
    view: ViewType = ViewType.ACTIVE_ONLY,
    *,
    children: bool = False,
    columns: Sequence[str] = (),
) -> RunListing:
    """One page of runs; child runs are left out and counted on their parents unless
    ``children``. Without ``columns``, the first six metric keys are the columns.

    Raises NotFound for an unknown experiment, InvalidArgument for a bad filter or column.
    """
    chosen = parse_columns(columns)
    experiments = _experiments(client, experiment_names, view)
    ids = list(experiments)
    from ferryml.store.filters import parse_filter

    parse_filter(filter_string)  # errors name the user's filter, not the one composed here
    query = filter_string
    if not children:
        query = (
            f"({filter_string}) and parent_run_id IS NULL"
            if filter_string.strip()
            else ("parent_run_id IS NULL")
        )
    page = client.search_runs(ids, query, order_by, max_results, page_token, view)
    counts: Counter[str] = Counter()
    if not children:
        ids_shown = [r.run_id for r in page.runs]
        for start in range(0, len(ids_shown), _IN_CHUNK):
            parents = ", ".join(f"'{i}'" for i in ids_shown[start : start + _IN_CHUNK])
            found = client.search_runs(
                ids, f"parent_run_id IN ({parents})", max_results=50_000, run_view_type=view
            ).runs
            counts.update(r.info.parent_run_id for r in found if r.info.parent_run_id)
    if not chosen:
        chosen = tuple(
            f"metrics.{k}" for k in sorted({k for r in page.runs for k in r.data.metrics})[:6]
        )
    return RunListing(page.runs, page.token, dict(counts), experiments, chosen)


def cell(run: Run, column: str) -> str | float | None:
    """The value of ``params.KEY``, ``metrics.KEY`` or ``tags.KEY`` for a run, or None."""
    prefix, _, key = column.partition(".")
    if prefix == "metrics":
        return run.data.metrics.get(key)
    return (run.data.params if prefix == "params" else run.data.tags).get(key)


def _experiments(client: FerryClient, names: Sequence[str], view: ViewType) -> dict[str, str]:
    if not names:
        # Deleted runs of active experiments count too, when asked for.
        shown = ViewType.ACTIVE_ONLY if view is ViewType.ACTIVE_ONLY else ViewType.ALL
        return {e.experiment_id: e.name for e in client.list_experiments(shown)}
    found = {}
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise NotFound(f"Experiment {name!r} not found. See `ferry experiments list`.")
        found[experiment.experiment_id] = experiment.name
    return found
