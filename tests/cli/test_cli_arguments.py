"""Every ``ferry`` command given wrong arguments, under hypothesis: it works, or it exits 1
or 2 with a line that starts ``error:`` (or click's ``Error:`` for a malformed command
line); no command shows a traceback or an "unexpected" error without ``--debug``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ferryml.cli._app import app

# Commands that serve or loop until stopped: they get arguments that cannot all be right.
FOREVER = {("serve",), ("server",), ("scheduler",), ("agent",), ("ui",)}


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None or (path and getattr(command, "invoke_without_command", False)):
        yield path, command
    for name, sub in (subcommands or {}).items():
        yield from _leaves(sub, (*path, name))


COMMANDS = dict(_leaves(typer.main.get_command(app)))


def test_the_walk_reaches_every_command() -> None:
    """A command added later is walked too: the list is the app's, not written here."""
    assert {("data", "add"), ("predict",), ("runs", "list"), ("server",)} <= set(COMMANDS)
    assert len(COMMANDS) > 60


def _options(command: Any) -> list[str]:
    return [opt for param in command.params for opt in getattr(param, "opts", ())
            if opt.startswith("-")]  # fmt: skip


ALL_OPTIONS = sorted({opt for command in COMMANDS.values() for opt in _options(command)})
WORDS = [
    "", " ", "-", "--", "-1", "0", "1e999", "nan", "abc", "x/y", "m/1", "m@champion",
    "models:/m@champion", "models:/", "runs:/", "a@b", "a@", "@1", "../..", "/", "nope.csv",
    "{", '{"webhook": 1}', '{"slack": "ftp://x"}', "[]", "'", "a:b", "os:getcwd", "x=1",
    "drift_share > 0.3", "*/5 * * * *", "1h", "-5m", "50,50", "é", "\\", "%s", "\t",
]  # fmt: skip
TOKENS = (
    st.sampled_from(WORDS)
    | st.sampled_from(ALL_OPTIONS)
    | st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=8)
)


@st.composite
def invocations(draw: st.DrawFn) -> list[str]:
    path = draw(st.sampled_from(sorted(COMMANDS)))
    own = _options(COMMANDS[path])
    tokens = st.sampled_from(own) | TOKENS if own else TOKENS
    args = [*path, *draw(st.lists(tokens, max_size=5))]
    if path in FOREVER:
        args.append("--no-such-option")
    return args


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("cli-args")
    with pytest.MonkeyPatch.context() as patch:
        for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_SERVER"):
            patch.delenv(key, raising=False)
        patch.chdir(folder)
        yield folder


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=invocations())
@example(args=["runs", "list", "--max-results", "abc"])
@example(args=["models", "show", "no-version"])
@example(args=["data", "add"])
@example(args=["deploy", "set-weights", "d", "x=1"])
@example(args=["monitor", "add", "m", "--deployment", "d", "--reference", "r", "--channel", "{"])
def test_wrong_arguments_give_one_clear_error_and_no_traceback(
    workdir: Path, cli: Cli, args: list[str]
) -> None:
    code, _, err = cli("--home", str(workdir / ".ferry"), *args)
    assert "Traceback" not in err, (args, err)
    assert "error: unexpected" not in err, (args, err)  # the CLI's last resort for a bug
    assert code in (0, 1, 2), (args, code, err)
    if code:
        errors = [line for line in err.splitlines() if line.lower().startswith("error:")]
        assert len(errors) == 1, (args, err)
