"""``ferry alerts …``: the alerts monitors fired and resolved, and a test send to a
channel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

if TYPE_CHECKING:
    from ferryml.monitoring.alerts import Alert

alerts = typer.Typer(
    help="Alerts: what the monitors' rules fired and resolved, and where each one went.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@alerts.command("list")
def list_(
    ctx: typer.Context,
    monitor: Annotated[str | None, typer.Option(help="Only this monitor's alerts.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    json: JsonFlag = False,
) -> None:
    """List alerts, newest first, with what became of each delivery."""
    from ferryml.monitoring.alerts import list_alerts

    found = list_alerts(settings_of(ctx), monitor=monitor, rule=rule, limit=limit)
    if json:
        render.print_json(found)
    elif not found:
        typer.echo("No alerts" + (f" for monitor {monitor!r}." if monitor else "."))
    else:
        render.table(
            None,
            ["id", "when", "monitor", "rule", "state", "value", "deliveries"],
            [
                (
                    a.id,
                    render.when(a.time),
                    a.monitor,
                    a.rule,
                    a.state,
                    render.number(a.value),
                    _deliveries(a),
                )
                for a in found
            ],
        )


@alerts.command("test")
def test(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="A channel named in ferry.yaml, or log.")],
    attempts: Annotated[int, typer.Option(min=1, help="Tries before giving up.")] = 3,
) -> None:
    """Send a test alert to a channel of ferry.yaml's monitoring.alerts; exits 1 if it
    fails after every retry."""
    from ferryml.monitoring.alerts import AlertManager, Retry

    manager = AlertManager.from_config(settings_of(ctx), retry=Retry(attempts=attempts))
    delivery = manager.send_test(channel)
    tries = f"{delivery.attempts} attempt{'s' if delivery.attempts > 1 else ''}"
    if not delivery.ok:
        typer.echo(f"error: channel {channel!r} failed after {tries}: {delivery.error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Sent a test alert to channel {channel!r} ({tries}).")


def _deliveries(alert: Alert) -> str:
    return "; ".join(
        f"{d.channel}: ok" if d.ok else f"{d.channel}: failed after {d.attempts} ({d.error})"
        for d in alert.deliveries
    )
