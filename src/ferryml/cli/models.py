"""``ferry models …``: the registry from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

if TYPE_CHECKING:
    from ferryml.registry.models import Registry

models = typer.Typer(
    help="Registered models: versions, aliases, evaluation, promotion.", no_args_is_help=True
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DataOption = Annotated[
    str, typer.Option(help="Evaluation data: a data version (NAME@V) or a CSV/Parquet file.")
]
TargetOption = Annotated[str, typer.Option(help="The column holding the true labels.")]
TaskOption = Annotated[
    str | None,
    typer.Option(help="classification or regression (default: what the model is)."),
]
SliceOption = Annotated[list[str] | None, typer.Option("--slice", help="Column to slice by.")]


def _registry(ctx: typer.Context) -> Registry:
    from ferryml.registry.models import Registry

    settings = settings_of(ctx)
    return Registry(settings)


@models.command("list")
def list_models(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List registered models with their latest version and aliases."""
    found = _registry(ctx).store.list_registered_models()
    if json:
        render.print_json(found)
        return
    render.table(
        None,
        ["name", "latest", "aliases", "updated"],
        [
            (
                m.name,
                m.latest_version or "",
                ", ".join(f"{a}={v}" for a, v in m.aliases.items()),
                render.when(m.last_update_time),
            )
            for m in found
        ],
    )


@models.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or NAME")],
    json: JsonFlag = False,
) -> None:
    """Show one version: package, flavor, signature, metrics, aliases."""
    import json as jsonlib

    version = _registry(ctx).version(ref)
    signature = jsonlib.loads(version.signature) if version.signature else None
    if json:
        render.print_json({**render.to_jsonable(version), "signature": signature})
        return
    render.console.print(
        f"[bold]{version.name}[/bold] version {version.version} "
        f"({version.flavor}) {version.status}  aliases: "
        f"{', '.join(version.aliases) or '-'}\nsource {version.source}\n"
        f"package {version.package_digest}"
    )
    if signature is None:
        render.console.print("signature: none (log the model with an input_example)")
    else:
        render.table(
            "signature: inputs",
            ["column", "type", "optional"],
            [
                (c["name"], c["type"], "yes" if c.get("optional") else "")
                for c in signature["inputs"]
            ],
        )
    if version.metrics:
        render.table(
            "metrics",
            ["metric", "value"],
            [(k, render.number(v)) for k, v in sorted(version.metrics.items())],
        )


@models.command("versions")
def versions(ctx: typer.Context, name: str, json: JsonFlag = False) -> None:
    """List the versions of a model."""
    found = _registry(ctx).store.list_model_versions(name)
    if json:
        render.print_json(found)
        return
    render.table(
        name,
        ["version", "flavor", "status", "aliases", "run", "data", "created"],
        [
            (
                v.version,
                v.flavor,
                v.status,
                ", ".join(v.aliases),
                v.run_id or "",
                ", ".join(v.data_versions),
                render.when(v.creation_time),
            )
            for v in found
        ],
    )


@models.command("alias")
def alias(
    ctx: typer.Context,
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: int,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
    json: JsonFlag = False,
) -> None:
    """Point ALIAS of NAME at VERSION (recorded in the audit trail)."""
    before = _registry(ctx).set_alias(name, alias_name, version, reason=reason)
    if json:
        render.print_json({"name": name, "alias": alias_name, "from": before, "to": version})
        return
    render.console.print(f"{name}@{alias_name}: {before if before else '-'} -> {version}")


@models.command("history")
def history(ctx: typer.Context, name: str, json: JsonFlag = False) -> None:
    """The audit trail of a model: who moved which alias, when, from, to and why."""
    events = _registry(ctx).history(name)
    if json:
        render.print_json(events)
        return
    render.table(
        name,
        ["when", "who", "action", "alias", "from", "to", "reason"],
        [
            (
                render.when(e.time),
                e.user,
                e.action,
                e.alias or "",
                e.from_version or "",
                e.to_version or "",
                e.reason,
            )
            for e in events
        ],
    )


@models.command("lineage")
def lineage(ctx: typer.Context, ref: str, json: JsonFlag = False) -> None:
    """The chain: version -> run -> params and metrics -> data versions -> code and environment."""
    found = _registry(ctx).lineage(ref)
    if json:
        render.print_json(found)
        return
    v, run = found.version, found.run
    render.console.print(f"[bold]{v.name}/{v.version}[/bold] ({v.flavor}) from {v.source}")
    if run is not None:
        render.console.print(f"run {run.info.run_id} {run.info.run_name} {run.info.status.value}")
        render.table("params", ["key", "value"], sorted(run.data.params.items()))
        render.table(
            "metrics",
            ["key", "value"],
            [(k, render.number(x)) for k, x in sorted(run.data.metrics.items())],
        )
    render.console.print(f"data: {', '.join(found.data_versions) or '-'}")
    render.console.print(
        f"code: {found.commit or 'not in git'}{' (uncommitted changes)' if found.dirty else ''}"
    )
    render.table("environment", ["key", "value"], sorted(found.environment.items()))


@models.command("evaluate")
def evaluate(
    ctx: typer.Context,
    ref: str,
    data: DataOption,
    target: TargetOption,
    task: TaskOption = None,
    slice_by: SliceOption = None,
    json: JsonFlag = False,
) -> None:
    """Evaluate a version on data; the metrics are stored on the version."""
    from ferryml.registry.api import read_data
    from ferryml.registry.gates import evaluate_version

    registry = _registry(ctx)
    result = evaluate_version(
        registry, ref, read_data(data), target=target, task=task, slices=slice_by or []
    )
    if json:
        render.print_json(result.to_dict())
        return
    render.table(
        f"{ref} on {data}",
        ["metric", "value"],
        [(k, render.number(x)) for k, x in sorted(result.metrics.items())],
    )
    for s in result.slices:
        render.console.print(
            f"  {s.value}: "
            + ", ".join(f"{k}={render.number(x)}" for k, x in sorted(s.metrics.items()))
        )


@models.command("promote")
def promote(
    ctx: typer.Context,
    name: str,
    candidate: Annotated[int, typer.Option(help="The version to promote.")],
    data: DataOption,
    target: TargetOption,
    to: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
    task: TaskOption = None,
    slice_by: SliceOption = None,
    force: Annotated[bool, typer.Option(help="Move even if the gate fails.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
    json: JsonFlag = False,
) -> None:
    """Evaluate candidate and champion on the same data; move the alias if the gate
    (ferry.yaml models.NAME.gate) passes. Exit 1 if it was not moved."""
    from ferryml.registry.api import configured_gate, read_data
    from ferryml.registry.gates import promote as gated
    from ferryml.registry.gates import task_of

    registry = _registry(ctx)
    task = task or task_of(registry, f"{name}/{candidate}")
    decision = gated(
        registry,
        name,
        candidate,
        alias=to,
        data=read_data(data),
        target=target,
        task=task,
        gate=configured_gate(registry.settings.root, name, task),
        force=force,
        reason=reason,
        slices=slice_by or [],
    )
    if json:
        render.print_json(decision.to_dict())
    else:
        render.table(
            f"{name}: version {candidate} vs {decision.champion or 'no champion'}",
            ["", "check", "detail"],
            [("ok" if c.passed else "FAIL", c.name, c.detail) for c in decision.checks],
        )
        verdict = "moved" if decision.moved else "not moved"
        render.console.print(f"{name}@{to} {verdict}" + (" (forced)" if decision.forced else ""))
    if not decision.moved:
        raise typer.Exit(1)


@models.command("delete")
def delete(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="NAME/VERSION, or NAME for the model and all its versions")
    ],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """Delete a model version, or a whole model, for good; `ferry gc` reclaims the files.
    Refused while an alias or a deployment points at it."""
    name, _, number = ref.partition("/")
    if "@" in ref or (number and not number.isdigit()):
        raise typer.BadParameter(
            f"{ref!r} is not NAME/VERSION or NAME; delete an alias with "
            "`ferry models delete-alias NAME ALIAS`.",
            param_hint="REF",
        )
    registry = _registry(ctx)
    if number:
        registry.delete_version(name, int(number), reason=reason)
        render.console.print(
            f"Deleted version {number} of model {name!r}; `ferry gc` reclaims its files."
        )
    else:
        registry.delete_model(name, reason=reason)
        render.console.print(
            f"Deleted model {name!r} and its versions; `ferry gc` reclaims their files."
        )


@models.command("delete-alias")
def delete_alias(
    ctx: typer.Context,
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """Remove ALIAS from NAME (recorded in the audit trail)."""
    version = _registry(ctx).delete_alias(name, alias_name, reason=reason)
    render.console.print(f"{name}@{alias_name} removed (it pointed at version {version}).")


@models.command("keygen")
def keygen(
    key: Annotated[Path, typer.Argument(metavar="KEY", help="Where to write the private key.")],
) -> None:
    """Make an ed25519 key pair for `ferry models sign`: KEY (private, PEM) and KEY.pub
    (the public key, for ferry.yaml's trust: list)."""
    from ferryml.registry.signing import generate_key

    line = generate_key(key)
    render.console.print(
        f"Wrote {key} (keep it secret) and {key}.pub. To require it, add to ferry.yaml:\n"
        f"trust:\n  - {line}",
        markup=False,
        highlight=False,
    )


@models.command("sign")
def sign(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME/VERSION or NAME@ALIAS.")],
    key: Annotated[
        Path, typer.Option(help="The ed25519 private key (from `ferry models keygen`).")
    ],
) -> None:
    """Sign the version's package: with `trust:` in ferry.yaml, only packages signed by a
    trusted key load (load_model, ferry serve, ferry predict, exported packages)."""
    version, key_id = _registry(ctx).sign(ref, key)
    render.console.print(
        f"Signed {version.name}/{version.version} (package {version.package_digest[:12]}) "
        f"with key {key_id}."
    )
