"""``ferry deploy …``: deployments (routes, canary, shadow, promote, rollback, history)
and packaging for production (docker, k8s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli import deploy_observe, deploy_pack
from ferryml.cli._context import settings_of
from ferryml.errors import InvalidArgument

if TYPE_CHECKING:
    from ferryml.serving.deployments import Deployments, Spec

deploy = typer.Typer(
    help="Deployments: canary, shadow, promote, rollback; Docker and Kubernetes files; a "
    "Grafana dashboard and Prometheus alerting rules.",
    no_args_is_help=True,
)
deploy.command("docker")(deploy_pack.docker)
deploy.command("k8s")(deploy_pack.k8s)
deploy.command("grafana")(deploy_observe.grafana)
deploy.command("prometheus-rules")(deploy_observe.prometheus_rules)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOption = Annotated[str, typer.Option(help="Why, for the history.")]


def _manager(ctx: typer.Context) -> Deployments:
    from ferryml.serving.deployments import Deployments

    settings = settings_of(ctx)
    return Deployments(settings)


def _print(name: str, spec: Spec, json: bool) -> None:
    if json:
        render.print_json({"name": name, **spec.to_dict()})
        return
    render.table(
        f"{name}: {spec.model}",
        ["route", "version", "role", "weight"],
        [(r.name, r.version, r.role, f"{r.weight:g}") for r in spec.routes],
    )


@deploy.command("create")
def create(
    ctx: typer.Context,
    name: str,
    model: Annotated[str, typer.Option(help="Registered model name.")],
    version: Annotated[int, typer.Option(help="The primary version.")],
    canary: Annotated[int | None, typer.Option(help="A canary version.")] = None,
    canary_weight: Annotated[float, typer.Option(help="The canary's share, %.")] = 10.0,
    shadow: Annotated[int | None, typer.Option(help="A shadow version.")] = None,
    reason: ReasonOption = "",
    json: JsonFlag = False,
) -> None:
    """Create a deployment; serve it with `ferry serve --deployment NAME`."""
    _print(
        name,
        _manager(ctx).create(
            name,
            model,
            version,
            canary=canary,
            canary_weight=canary_weight,
            shadow=shadow,
            reason=reason,
        ),
        json,
    )


@deploy.command("show")
def show(ctx: typer.Context, name: str, json: JsonFlag = False) -> None:
    """Show a deployment's routes."""
    _print(name, _manager(ctx).get(name), json)


@deploy.command("set-weights")
def set_weights(
    ctx: typer.Context,
    name: str,
    weights: Annotated[list[str], typer.Argument(help="ROUTE=WEIGHT, e.g. v3=90")],
    reason: ReasonOption = "",
    json: JsonFlag = False,
) -> None:
    """Change route weights."""
    parsed = {}
    for item in weights:
        route, sep, value = item.partition("=")
        try:
            parsed[route] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidArgument(f"Weight {item!r} must look like v3=90.")
    _print(name, _manager(ctx).set_weights(name, parsed, reason=reason), json)


@deploy.command("add-route")
def add_route(
    ctx: typer.Context,
    name: str,
    version: int,
    role: Annotated[str, typer.Option(help="canary or shadow")] = "canary",
    weight: Annotated[float, typer.Option(help="The canary's share, %.")] = 10.0,
    reason: ReasonOption = "",
    json: JsonFlag = False,
) -> None:
    """Add a canary (with a share of the traffic) or a shadow (a copy of it)."""
    _print(
        name, _manager(ctx).add_route(name, version, role=role, weight=weight, reason=reason), json
    )


@deploy.command("promote")
def promote(
    ctx: typer.Context, name: str, reason: ReasonOption = "", json: JsonFlag = False
) -> None:
    """Make the canary the primary, with all the traffic."""
    _print(name, _manager(ctx).promote(name, reason=reason), json)


@deploy.command("rollback")
def rollback(
    ctx: typer.Context, name: str, reason: ReasonOption = "", json: JsonFlag = False
) -> None:
    """Take the canary's traffic away (or return to the previous primary)."""
    _print(name, _manager(ctx).rollback(name, reason=reason), json)


@deploy.command("history")
def history(ctx: typer.Context, name: str, json: JsonFlag = False) -> None:
    """Every change of a deployment: when, who, what, why."""
    events = _manager(ctx).history(name)
    if json:
        render.print_json(events)
        return
    render.table(
        name,
        ["when", "who", "action", "routes after", "reason"],
        [
            (
                render.when(e.time),
                e.user,
                e.action,
                ", ".join(
                    f"v{r['version']}:{r['role']}:{r['weight']:g}"
                    for r in (e.after or {}).get("routes", [])
                ),
                e.reason,
            )
            for e in events
        ],
    )


@deploy.command("list")
def list_deployments(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List deployments, with the implicit ones of `ferry serve NAME@ALIAS`."""
    found = _manager(ctx).list_deployments()
    if json:
        render.print_json([d.to_dict() for d in found])
        return
    render.table(
        None,
        ["name", "model", "routes"],
        [
            (
                d.name,
                d.spec.model if d.spec else d.name,
                ", ".join(f"{r.name}:{r.role}:{r.weight:g}" for r in d.spec.routes)
                if d.spec
                else f"implicit: ferry serve {d.name}@ALIAS",
            )
            for d in found
        ],
    )
