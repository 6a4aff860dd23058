"""The root ``ferry`` command: global options, the commands (each module imported when its
command runs), and the one place errors become exit codes."""

from __future__ import annotations

import functools
import importlib
import sys
import traceback
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from ferryml.config import Settings
from ferryml.errors import FerryError, InvalidArgument, ValidationFailed

# Every command, in the order of ``ferry --help``: name -> (module of ferryml.cli, attribute:
# a Typer of subcommands or a command function). A command's module is imported when that
# command runs (``ferry serve`` does not import ``ferry data``'s libraries); ``ferry --help``
# imports them all.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("tracking", "init"),
    "info": ("info", "info"),
    "serve": ("serve", "serve"),
    "predict": ("predict", "predict"),
    "gc": ("gc", "gc"),
    "ui": ("ui", "ui"),
    "scheduler": ("schedule", "scheduler"),
    "agent": ("agent", "agent"),
    "approve": ("agent", "approve"),
    "reject": ("agent", "reject"),
    "experiments": ("tracking", "experiments"),
    "runs": ("tracking", "runs"),
    "artifacts": ("artifacts", "artifacts"),
    "data": ("data", "data"),
    "pipeline": ("pipeline", "pipelines"),
    "models": ("models", "models"),
    "deploy": ("deploy", "deploy"),
    "feedback": ("feedback", "feedback"),
    "predictions": ("predictions", "predictions"),
    "alerts": ("alerts", "alerts"),
    "monitor": ("monitor", "monitor"),
    "schedule": ("schedule", "schedules"),
    "server": ("server", "server"),
    "token": ("server", "tokens"),
    "import": ("importing", "imports"),
    "decisions": ("agent", "decisions"),
}
# Subcommands a group takes from another module: group -> [(name, module, function)].
_GRAFTS: dict[str, list[tuple[str, str, str]]] = {
    "data": [("profile", "dataset", "profile"), ("drift", "dataset", "drift")],
}

app: typer.Typer  # the whole app, every command imported: built on first use (__getattr__)


def _typer(names: Sequence[str]) -> typer.Typer:
    """The root app with the commands ``names`` (importing their modules)."""
    root = typer.Typer(
        name="ferry",
        help="ferryml: versioned data, tracked experiments, a model registry, serving and "
        "monitoring, in one loop.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    root.callback()(_root)
    for name in names:
        module, attribute = COMMANDS[name]
        found = getattr(importlib.import_module(f"ferryml.cli.{module}"), attribute)
        if isinstance(found, typer.Typer):
            for sub, graft_module, function in _GRAFTS.get(name, []):
                if not any(c.name == sub for c in found.registered_commands):  # once
                    graft = importlib.import_module(f"ferryml.cli.{graft_module}")
                    found.command(sub)(getattr(graft, function))
            root.add_typer(found, name=name)
        else:
            root.command(name)(found)
    return root


def __getattr__(name: str) -> Any:
    if name == "app":
        built = globals()["app"] = _typer(list(COMMANDS))
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    command = _root_command()
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
def _root_command() -> TyperGroup:
    """The root command as typer builds it from the whole app, each command built when first
    looked up (and kept: building reads every parameter's signature, most of a call's time
    when a process runs many commands)."""
    group = typer.main.get_group(_typer([]))
    group.commands = _Commands()
    return group


class _Commands(MutableMapping[str, Any]):
    """The root's commands by name (typer's click commands), in ``COMMANDS``' order; a
    command is built, its module imported, when it is first looked up."""

    def __init__(self) -> None:
        self._names = list(COMMANDS)
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = typer.main.get_group(_typer([name])).commands[name]
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:  # without building it
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


def _fail(message: str, debug: bool, code: int = 1) -> None:
    if debug:
        traceback.print_exc()
    # One line, whatever a library put in the reason (pyarrow's span two).
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)
