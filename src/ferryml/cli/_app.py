"""The root ``ferry`` command: global options and the one place errors become exit codes."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from ferryml.cli import (
    agent,
    alerts,
    artifacts,
    data,
    dataset,
    deploy,
    feedback,
    gc,
    importing,
    info,
    models,
    monitor,
    pipeline,
    predict,
    predictions,
    schedule,
    serve,
    server,
    tracking,
    ui,
)
from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument, ValidationFailed

app = typer.Typer(
    name="ferry",
    help="ferryml: versioned data, tracked experiments, a model registry, serving and "
    "monitoring, in one loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(tracking.experiments, name="experiments")
app.add_typer(tracking.runs, name="runs")
app.add_typer(artifacts.artifacts, name="artifacts")
app.add_typer(data.data, name="data")
data.data.command("profile")(dataset.profile)
data.data.command("drift")(dataset.drift)
app.add_typer(pipeline.pipelines, name="pipeline")
app.add_typer(models.models, name="models")
app.add_typer(deploy.deploy, name="deploy")
app.add_typer(feedback.feedback, name="feedback")
app.add_typer(predictions.predictions, name="predictions")
app.add_typer(alerts.alerts, name="alerts")
app.add_typer(monitor.monitor, name="monitor")
app.add_typer(schedule.schedules, name="schedule")
app.add_typer(server.server, name="server")
app.add_typer(server.tokens, name="token")
app.add_typer(importing.imports, name="import")
app.command("init")(tracking.init)
app.command("info")(info.info)
app.command("serve")(serve.serve)
app.command("predict")(predict.predict)
app.command("gc")(gc.gc)
app.command("ui")(ui.ui)
app.command("scheduler")(schedule.scheduler)
app.add_typer(agent.decisions, name="decisions")
app.command("agent")(agent.agent)
app.command("approve")(agent.approve)
app.command("reject")(agent.reject)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Local ferryml folder (default: ./.ferry, or FERRY_HOME).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Metadata store URL (default: FERRY_STORE or SQLite).")
    ] = None,
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact store URL (default: FERRY_ARTIFACTS).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    # Resolved when a command first asks (settings_of), so that --help works beside a
    # broken ferry.yaml and a command that needs no store reads no config.
    ctx.obj = functools.partial(Settings.resolve, home=home, store=store, artifacts=artifacts)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``ferry``: exit 0 on success, 1 on failure, 2 on bad usage (a malformed command
    line, or an ``InvalidArgument`` from the core for a value the user gave); one line per
    error."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = _command(len(app.registered_commands), len(app.registered_groups))
    try:
        code = command.main(args=args, prog_name="ferry", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)  # a command's typer.Exit(n): returned, not raised, here
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # bad usage: typer prints it with the command's help hint
        show = getattr(e, "show", None)
        if show is not None:
            show()
        else:
            print(f"Error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        sys.exit(1)
    except ValidationFailed as e:  # the data broke its checks: a failure, not bad usage
        _fail(str(e), "--debug" in args)
    except InvalidArgument as e:  # a value the user gave is malformed: bad usage, like click's
        _fail(str(e), "--debug" in args, code=2)
    except FerryError as e:
        _fail(str(e), "--debug" in args)
    except Exception as e:  # noqa: BLE001 - an unexpected failure still gets one line
        _fail(
            f"unexpected {type(e).__name__}: {e} (run with --debug to see where)", "--debug" in args
        )


@functools.cache
def _command(commands: int, groups: int) -> Any:  # typer's own click Command
    """The click command built from ``app``, once per shape: building it reads every
    command's signature (most of a call's time when a process runs many commands)."""
    return typer.main.get_command(app)


def _fail(message: str, debug: bool, code: int = 1) -> None:
    if debug:
        traceback.print_exc()
    # One line, whatever a library put in the reason (pyarrow's span two).
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)
