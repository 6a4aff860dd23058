"""``ferry data …``: version, restore, compare, move and validate data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of
from ferryml.data.workspace import Workspace

if TYPE_CHECKING:
    from ferryml.data.compare import ColumnShift
    from ferryml.data.schema import SchemaDiff

data = typer.Typer(
    help="Version data: add, status, checkout, diff, push, pull, validate, delete.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RemoteOption = Annotated[
    str | None,
    typer.Option(
        "--remote",
        "-r",
        help="Remote store URL, e.g. s3://bucket/prefix (default: FERRY_REMOTE, else the team "
        "server that FERRY_TRACKING_URI names).",
    ),
]


def _workspace(ctx: typer.Context) -> Workspace:
    workspace = Workspace(settings_of(ctx))
    ctx.call_on_close(workspace.close)
    return workspace


@data.command("add")
def add(
    ctx: typer.Context,
    path: Path,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the path).")] = None,
    json: JsonFlag = False,
) -> None:
    """Version a file or folder; writes PATH.ferry to commit with your code."""
    workspace = _workspace(ctx)
    version = workspace.add(path, name)
    if json:
        render.print_json(version)
        return
    render.console.print(
        f"{version.ref}: {version.files} file{'' if version.files == 1 else 's'}, "
        f"{render.size(version.size)} -> {path}.ferry"
    )
    ignore = workspace.gitignore_for(path)
    if ignore is not None:
        shown = os.path.relpath(ignore, workspace.settings.workdir)
        render.console.print(f"{path} is listed in {shown}; commit {path}.ferry and {shown}.")


@data.command("delete")
def delete(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(metavar="NAME@VERSION...")],
) -> None:
    """Delete dataset versions for good; `ferry gc` reclaims files no version holds."""
    workspace = _workspace(ctx)
    for ref in refs:
        if "@" not in ref:
            raise typer.BadParameter(
                f"{ref!r} names no version; delete one version at a time, e.g. {ref}@1.",
                param_hint="NAME@VERSION",
            )
        version = workspace.delete_version(ref)
        render.console.print(f"Deleted {version.ref}; `ferry gc` reclaims its files.")


@data.command("status")
def status(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument()] = None,
    json: JsonFlag = False,
) -> None:
    """What changed in tracked paths since their pointer files were written."""
    found = _workspace(ctx).status(paths)
    if json:
        render.print_json(found)
        return
    if not found:
        render.console.print("No tracked data. Track a path with `ferry data add PATH`.")
    for s in found:
        if s.clean:
            render.console.print(f"{s.path}: up to date with {s.name}@{s.version}")
        elif s.missing:
            render.console.print(f"{s.path}: missing; restore it with `ferry data checkout`")
        else:
            render.console.print(
                f"{s.path}: changed since {s.name}@{s.version}: "
                f"{len(s.added)} added, {len(s.removed)} removed, "
                f"{len(s.modified)} modified"
            )
            for label, items in (
                ("added", s.added),
                ("removed", s.removed),
                ("modified", s.modified),
            ):
                for item in items[:10]:
                    render.console.print(f"  {label}: {item}")


@data.command("checkout")
def checkout(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(help="NAME@VERSION or a tracked path (default: every pointer file)."),
    ] = None,
    to: Annotated[Path | None, typer.Option(help="Restore to this path instead.")] = None,
    link: Annotated[
        str | None,
        typer.Option(
            help="How to place files, the first that works of reflink, hardlink (read-only, "
            "shares the store's copy) and copy (default: FERRY_LINK, `link:` in ferry.yaml, "
            "else reflink,copy)."
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Restore data as a pointer file or a version names it."""
    done = _workspace(ctx).checkout(target, to=to, link=link)
    if json:
        render.print_json([r._asdict() for r in done])
        return
    for r in done:
        note = f"; {r.note}" if r.note else ""
        render.console.print(f"{r.path}: version {r.version}, {r.written} files written{note}")


@data.command("diff")
def diff(ctx: typer.Context, a: str, b: str, json: JsonFlag = False) -> None:
    """Compare two versions (NAME@3 NAME@4): files, and for tables schema, rows and columns."""
    from ferryml.data.compare import diff_versions

    result = diff_versions(_workspace(ctx), a, b)
    if json:
        render.print_json(result)
        return
    if not result.same_dataset:
        render.console.print(
            f"{result.a} and {result.b} are different datasets ({result.kinds[0]} and "
            f"{result.kinds[1]}); comparing their contents."
        )
    render.console.print(
        f"{result.a} -> {result.b}: {len(result.added)} added, "
        f"{len(result.removed)} removed, {len(result.modified)} modified"
    )
    for label, paths in (
        ("added", result.added),
        ("removed", result.removed),
        ("modified", result.modified),
    ):
        _print_paths(label, paths)
    if None not in result.rows:
        render.console.print(f"rows: {result.rows[0]} -> {result.rows[1]}")
    _print_table_change("", result.schema, result.shifts)
    for table in result.tables:
        render.console.print(f"table {table.path}: rows {table.rows[0]} -> {table.rows[1]}")
        _print_table_change(f"{table.path}: ", table.schema, table.shifts)


def _print_paths(label: str, paths: tuple[str, ...], most: int = 20) -> None:
    shown = [p or "(the file itself)" for p in paths[:most]]
    for path in shown:
        render.console.print(f"  {label:<9}{path}", markup=False)
    if len(paths) > most:
        render.console.print(f"  … and {len(paths) - most} more {label} (--json lists all)")


def _print_table_change(
    prefix: str, schema: SchemaDiff | None, shifts: Sequence[ColumnShift]
) -> None:
    if schema is not None and schema.changed:
        changes = [f"+ {c}" for c in schema.added] + [f"- {c}" for c in schema.removed]
        changes += [f"{c.column}: {c.before} -> {c.after}" for c in schema.kind_changes]
        changes += [f"{c.column}: {c.before} -> {c.after}" for c in schema.nullability_changes]
        render.console.print(f"{prefix}schema: {'; '.join(changes)}", markup=False)
    if shifts:
        render.table(
            f"{prefix}columns",
            ["column", "statistic", "before", "after"],
            [(s.column, s.statistic, _cell(s.before), _cell(s.after)) for s in shifts],
        )


def _cell(value: float | str | None) -> str:
    return render.number(value) if isinstance(value, float) else str(value)


@data.command("ls")
def ls(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List datasets with their latest version."""
    found = _workspace(ctx).list_datasets()
    if json:
        render.print_json(found)
        return
    render.table(
        None,
        ["name", "latest", "kind", "files", "size", "rows", "added"],
        [
            (
                v.name,
                v.version,
                v.kind,
                v.files,
                render.size(v.size),
                "" if v.rows is None else v.rows,
                render.when(v.creation_time),
            )
            for v in found
        ],
    )


@data.command("log")
def log(ctx: typer.Context, name: str, json: JsonFlag = False) -> None:
    """List every version of a dataset."""
    found = _workspace(ctx).log(name)
    if json:
        render.print_json(found)
        return
    render.table(
        name,
        ["version", "kind", "files", "size", "rows", "added", "run"],
        [
            (
                v.version,
                v.kind,
                v.files,
                render.size(v.size),
                "" if v.rows is None else v.rows,
                render.when(v.creation_time),
                v.run_id or "",
            )
            for v in found
        ],
    )


RefsArgument = Annotated[list[str] | None, typer.Argument(help="NAME[@V] (default: all in use).")]


@data.command("push")
def push(
    ctx: typer.Context,
    refs: RefsArgument = None,
    remote: RemoteOption = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Also read back the blobs the remote holds, and send again those that are "
            "corrupt or gone (reads them all: slow).",
        ),
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Upload the blobs of versions (default: all in use) missing on the remote."""
    from ferryml.data.transfer import push as push_blobs

    report = push_blobs(_workspace(ctx), remote, refs, repair=repair)
    _transferred(report, "pushed", "to", "there", json)


@data.command("pull")
def pull(
    ctx: typer.Context,
    refs: RefsArgument = None,
    remote: RemoteOption = None,
    json: JsonFlag = False,
) -> None:
    """Download the blobs of versions (default: all in use) missing locally."""
    from ferryml.data.transfer import pull as pull_blobs

    _transferred(pull_blobs(_workspace(ctx), remote, refs), "pulled", "from", "here", json)


def _transferred(report: Any, verb: str, direction: str, place: str, json: bool) -> None:
    if json:
        render.print_json(report)
        return
    repaired = f" ({report.repaired} corrupt or gone there, sent again)" if report.repaired else ""
    render.console.print(
        f"{verb} {report.copied} blobs ({render.size(report.bytes)}) {direction} "
        f"{report.remote}{repaired}; {report.present} were {place} already"
    )


@data.command("validate")
def validate(
    ctx: typer.Context,
    ref: str,
    json: JsonFlag = False,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report.")] = None,
) -> None:
    """Check a table version against the expectations in ferry.yaml; exit 1 on failure."""
    report = _workspace(ctx).validate(ref)
    if html is not None:
        html.write_text(report.to_html(title=f"Validation of {ref}"), encoding="utf-8")
    if json:
        render.print_json(report.to_dict())
    else:
        render.table(
            f"validation of {ref}",
            ["", "expectation", "column", "observed", "message"],
            [
                ("ok" if r.passed else "FAIL", r.expectation, r.column or "", r.observed, r.message)
                for r in report.results
            ],
        )
    if not report.passed:
        raise typer.Exit(1)
