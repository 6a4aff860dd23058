"""``ferry CMD`` imports CMD's module alone (a server starts sooner, a quick command
answers sooner), while ``ferry --help`` and ``ferryml.cli.app`` still have every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import typer

from ferryml.cli._app import COMMANDS, app

Cli = Callable[..., tuple[int, str, str]]


def _ferry_in_fresh_process(*args: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the ferryml.cli modules imported by ``ferry ARGS`` run by
    ``main`` in a new interpreter."""
    script = (
        "import json, sys\n"
        "from ferryml.cli import main\n"
        "code = 0\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit as e:\n"
        "    code = e.code or 0\n"
        "mods = sorted(m for m in sys.modules if m.startswith('ferryml.cli'))\n"
        "print('\\n' + json.dumps([code, mods]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    out, _, last = done.stdout.rstrip("\n").rpartition("\n")
    code, modules = json.loads(last)
    return code, out, modules


def test_a_command_imports_its_own_module_and_no_other_command() -> None:
    code, out, modules = _ferry_in_fresh_process("serve", "--help")
    assert code == 0
    assert "Usage: ferry serve [OPTIONS]" in out
    assert modules == [
        "ferryml.cli",
        "ferryml.cli._app",
        "ferryml.cli._context",
        "ferryml.cli.serve",
    ]


def test_a_group_brings_the_subcommands_it_takes_from_another_module() -> None:
    code, out, modules = _ferry_in_fresh_process("data", "--help")
    assert code == 0
    assert {"ferryml.cli.data", "ferryml.cli.dataset"} <= set(modules)
    assert "ferryml.cli.serve" not in modules
    lines = [line.split()[1] for line in out.splitlines() if line.startswith("│ ")]
    assert {"add", "checkout", "profile", "drift"} <= set(lines)


def test_help_lists_every_command_in_order() -> None:
    code, out, modules = _ferry_in_fresh_process("--help")
    assert code == 0
    listed = [
        line.split()[1]
        for line in out.split("Commands")[1].splitlines()
        if line.startswith("│ ") and not line.startswith("│  ")
    ]
    assert listed == list(COMMANDS)
    assert {f"ferryml.cli.{module}" for module, _ in COMMANDS.values()} <= set(modules)


def test_a_mistyped_command_is_matched_against_every_command_without_importing_them() -> None:
    code, out, modules = _ferry_in_fresh_process("serv")
    assert code == 2
    assert modules == ["ferryml.cli", "ferryml.cli._app"]


def test_the_whole_app_has_every_command() -> None:
    assert list(typer.main.get_command(app).commands) == list(COMMANDS)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_answers_help_from_main(cli: Cli, name: str) -> None:
    code, out, err = cli(name, "--help")
    assert (code, err) == (0, "")
    assert f"Usage: ferry {name} " in out


def test_a_mistyped_command_gets_suggestions_from_main(cli: Cli) -> None:
    code, _, err = cli("serv")
    assert code == 2
    assert "No such command 'serv'. Did you mean 'serve', 'server'?" in err
