"""``ferry deploy grafana|prometheus-rules``: a dashboard and alerting rules for the model
server's ``/metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferryml.cli import _render as render

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def grafana(
    out: Annotated[
        Path,
        typer.Option("--out", help="The dashboard file to write (JSON, for Grafana's import)."),
    ] = Path("ferryml-dashboard.json"),
    title: Annotated[str, typer.Option(help="The dashboard's title.")] = "ferryml",
    json: JsonFlag = False,
) -> None:
    """Write a Grafana dashboard of the model server's metrics: traffic, latency
    percentiles, errors and batch sizes per served model, route and version; model memory;
    monitors' drift and performance; decisions under way. Import it in Grafana
    (Dashboards > New > Import) and pick the Prometheus that scrapes `ferry serve`."""
    from ferryml.serving.observability import dashboard_json, write_text

    written = write_text(out, dashboard_json(title))
    if json:
        render.print_json({"path": str(written)})
        return
    render.console.print(
        f"Wrote the Grafana dashboard to {written}; import it in Grafana (Dashboards > New > "
        "Import) and choose the Prometheus data source that scrapes ferry serve's /metrics."
    )


def prometheus_rules(
    out: Annotated[
        Path, typer.Option("--out", help="The rules file to write (YAML, for rule_files).")
    ] = Path("ferryml-rules.yml"),
    error_rate: Annotated[
        float, typer.Option(help="Alert when more than this share of predictions fail (0-1).")
    ] = 0.05,
    latency_p99: Annotated[
        float, typer.Option(help="Alert when the p99 prediction latency is over this, seconds.")
    ] = 0.5,
    drift_share: Annotated[
        float, typer.Option(help="Alert when a monitor finds more than this share drifted.")
    ] = 0.3,
    stale_windows: Annotated[
        float,
        typer.Option(help="Alert when a monitor's newest window is older than this many windows."),
    ] = 3.0,
    for_: Annotated[
        str, typer.Option("--for", help="How long a condition holds before it fires (e.g. 5m).")
    ] = "5m",
    json: JsonFlag = False,
) -> None:
    """Write Prometheus alerting rules for the model server: prediction errors, HTTP 5xx,
    p99 latency, data drift and stale monitors. Add the file to `rule_files` in
    prometheus.yml; `promtool check rules FILE` checks it."""
    from ferryml.serving.observability import AlertThresholds, rules_yaml, write_text

    thresholds = AlertThresholds(error_rate, latency_p99, drift_share, stale_windows, for_)
    written = write_text(out, rules_yaml(thresholds))
    if json:
        render.print_json({"path": str(written)})
        return
    render.console.print(
        f"Wrote the alerting rules to {written}; add it to rule_files in prometheus.yml "
        "(check it with `promtool check rules`)."
    )
