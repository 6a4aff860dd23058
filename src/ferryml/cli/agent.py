"""``ferry agent``, ``ferry decisions …``, ``ferry approve`` and ``ferry reject``: the agent
that runs schedules, monitors and retraining policies, and the decisions it takes."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

decisions = typer.Typer(
    help="Retraining decisions: what triggered each one and every step it took.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def agent(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="Make one pass and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes.")] = 10.0,
    lease: Annotated[
        float,
        typer.Option(
            min=1.0, help="Seconds another agent waits before taking over from a dead one."
        ),
    ] = 30.0,
) -> None:
    """Run due schedules, every monitor and the policies of ferry.yaml, pass after pass.

    One agent acts at a time (a lease in the store); start a second as a stand-by."""
    from ferryml.automation.agent import Agent
    from ferryml.errors import InvalidArgument

    if not once and interval >= lease:
        raise InvalidArgument(
            f"--interval {interval:g} must be shorter than --lease {lease:g}: the lease lapses "
            "between passes otherwise and a stand-by agent takes over."
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Agent(settings_of(ctx), lease_seconds=lease) as running:
        names = ", ".join(running.policies) or "none (add policies: to ferry.yaml)"
        typer.echo(f"Agent {running.holder}: policies {names}.")
        if once:
            tick = running.tick()
            _print_tick(tick)
            raise typer.Exit(1 if tick.errors else 0)
        running.run(interval=interval, stop=stop, on_tick=_print_tick)


def _print_tick(tick: Any) -> None:
    if not tick.active:
        if tick.holder:
            typer.echo(f"Standing by: agent {tick.holder} holds the lease.")
        for error in tick.errors:
            typer.echo(f"Error: {error}", err=True)
        return
    for decision in tick.created:
        typer.echo(f"Decision {decision} started; see `ferry decisions show {decision}`.")
    for error in tick.errors:
        typer.echo(f"Error: {error}", err=True)
    if tick.reviews:
        typer.echo(f"Review queues: {tick.reviews} prediction(s) chosen for a person to label.")
    if tick.schedules or tick.windows or tick.steps:
        typer.echo(
            f"Pass: {tick.schedules} scheduled run(s), {tick.windows} monitor window(s), "
            f"{tick.steps} decision step(s)."
        )


@decisions.command("list")
def list_(
    ctx: typer.Context,
    policy: Annotated[str | None, typer.Option(help="Only this policy's decisions.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Only decisions not over yet.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    json: JsonFlag = False,
) -> None:
    """List decisions, newest first; those waiting for approval say so."""
    from ferryml.automation.api import list_decisions

    found = list_decisions(settings_of(ctx), policy=policy, open_only=open_, limit=limit)
    if json:
        render.print_json(found)
    elif not found:
        typer.echo("No decisions" + (f" of policy {policy!r}." if policy else "."))
    else:
        render.table(
            None,
            ["id", "policy", "deployment", "state", "outcome", "trigger", "created"],
            [
                (d.id, d.policy, d.deployment, d.state, d.outcome or "", d.context.get("trigger"),
                 render.when(d.created))
                for d in found
            ],
        )  # fmt: skip


@decisions.command("show")
def show(ctx: typer.Context, decision_id: int, json: JsonFlag = False) -> None:
    """The story of a decision: its trigger and every step, with the runs, model
    versions and monitor window it involved."""
    from ferryml.automation.api import decision_story

    story = decision_story(settings_of(ctx), decision_id)
    if json:
        render.print_json(story)
        return
    outcome = story["outcome"] or f"in progress ({story['state']})"
    typer.echo(
        f"Decision {story['id']}: policy {story['policy']} on deployment "
        f"{story['deployment']}, {outcome}."
    )
    for event in story["events"]:
        typer.echo(f"  {render.when(event['time'])}  {event['kind']:<12} {event['message']}")
    if story["links"]:
        typer.echo("Involved:")
        for what, link in story["links"].items():
            name = link.get("version") or link.get("id") or link.get("monitor")
            typer.echo(f"  {what:<15} {name}  ({link['see']})")


def approve(
    ctx: typer.Context,
    decision_id: int,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """Approve a decision that waits: the agent rolls its candidate out next pass."""
    from ferryml.automation.api import approve as approve_

    approve_(settings_of(ctx), decision_id, reason)
    typer.echo(f"Decision {decision_id} approved; the agent rolls it out on its next pass.")


def reject(
    ctx: typer.Context,
    decision_id: int,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """Reject a decision that waits: it ends and the champion keeps serving."""
    from ferryml.automation.api import reject as reject_

    reject_(settings_of(ctx), decision_id, reason)
    typer.echo(f"Decision {decision_id} rejected; the champion keeps serving.")
