"""``ferry server`` (the team server), its users, and ``ferry token``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ferryml.cli import _render as render
from ferryml.cli._context import settings_of

server = typer.Typer(
    help="The team server: one HTTP API over the stores, with users, tokens and roles.",
    invoke_without_command=True,
)
users = typer.Typer(help="The team server's users and their roles.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens: FERRY_TOKEN on a client.", no_args_is_help=True)
server.add_typer(users, name="user")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@server.callback()
def run(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    auth: Annotated[
        bool, typer.Option("--auth/--no-auth", help="Require tokens (--no-auth: loopback only).")
    ] = True,
    signed_urls: Annotated[
        bool,
        typer.Option(
            "--signed-urls/--no-signed-urls",
            help="Over S3 artifacts, let clients move blobs straight to and from the bucket.",
        ),
    ] = False,
    fsync: Annotated[
        bool,
        typer.Option(
            "--fsync/--no-fsync",
            help="Put each uploaded blob on disk before answering (safe against power loss); "
            "--no-fsync leaves it to the kernel: uploads go faster than the disk writes.",
        ),
    ] = True,
    session_hours: Annotated[
        float,
        typer.Option(min=0.001, help="Hours a web UI sign-in lasts before it asks again."),
    ] = 12.0,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the REST API under /api/v1 over the configured stores (FERRY_STORE: SQLite or
    PostgreSQL; FERRY_ARTIFACTS: a folder or s3://). Clients set FERRY_TRACKING_URI to its
    URL and FERRY_TOKEN to a token."""
    if ctx.invoked_subcommand is not None:
        return
    from ferryml.server.team import serve_team
    from ferryml.server.team.app import check_bind

    settings = settings_of(ctx)
    check_bind(host, port, auth)
    scheme = "https" if ssl_certfile else "http"
    render.console.print(
        f"ferry server on {scheme}://{host}:{port} (store {settings.store_url}, "
        f"artifacts {settings.artifacts_url}, auth {'on' if auth else 'off'})"
    )
    serve_team(
        settings,
        host=host,
        port=port,
        workers=workers,
        auth=auth,
        signed_urls=signed_urls,
        fsync=fsync,
        session_hours=session_hours,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


@contextmanager
def _users(ctx: typer.Context) -> Iterator[Any]:
    from ferryml.store.factory import open_user_store

    store = open_user_store(settings_of(ctx))
    try:
        yield store
    finally:
        store.close()


def _show_token(user: str, secret: str) -> None:
    render.console.print(f"Token for {user} (shown once; clients set FERRY_TOKEN to it):")
    print(secret)


@users.command("add")
def user_add(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help="reader, writer, maintainer or admin.")],
    token: Annotated[bool, typer.Option("--token/--no-token", help="Also create a token.")] = True,
) -> None:
    """Add a user with a role (and print a first token for them)."""
    from ferryml.store.sql_users import parse_role

    with _users(ctx) as store:
        user = store.create_user(name, parse_role(role))
        render.console.print(f"User {user.name} added with role {user.role.value}.")
        if token:
            _, secret = store.create_token(user.name, "first token")
            _show_token(user.name, secret)


@users.command("list")
def user_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """List users and their roles."""
    with _users(ctx) as store:
        found = store.list_users()
    if json:
        render.print_json(found)
        return
    render.table(
        "users",
        ["name", "role", "created", "disabled"],
        [(u.name, u.role.value, render.when(u.creation_time), u.disabled) for u in found],
    )


@users.command("set-role")
def user_set_role(ctx: typer.Context, name: str, role: str) -> None:
    """Change a user's role."""
    from ferryml.store.sql_users import parse_role

    with _users(ctx) as store:
        user = store.update_user(name, role=parse_role(role))
    render.console.print(f"User {user.name} now has role {user.role.value}.")


@users.command("disable")
def user_disable(ctx: typer.Context, name: str) -> None:
    """Disable a user: their tokens stop working."""
    with _users(ctx) as store:
        store.update_user(name, disabled=True)
    render.console.print(f"User {name} disabled.")


@tokens.command("create")
def token_create(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option(help="Whose token (admins only; default: you).")
    ] = None,
    label: Annotated[str, typer.Option(help="What it is for.")] = "",
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    from ferryml.store.factory import is_server_url

    settings = settings_of(ctx)
    with _users(ctx) as store:
        owner = user
        if owner is None:
            if not is_server_url(settings.store_url):
                raise typer.BadParameter("name the user with --user on the server's own store.")
            owner = store.whoami().name
        _, secret = store.create_token(owner, label)
    _show_token(owner, secret)


@tokens.command("list")
def token_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
    json: JsonFlag = False,
) -> None:
    """List tokens (never their secrets)."""
    with _users(ctx) as store:
        found = store.list_tokens(user)
    if json:
        render.print_json(found)
        return
    render.table(
        "tokens",
        ["id", "user", "label", "created", "revoked"],
        [
            (t.token_id, t.user, t.label, render.when(t.creation_time), render.when(t.revoked_time))
            for t in found
        ],
    )


@tokens.command("revoke")
def token_revoke(ctx: typer.Context, token_id: str) -> None:
    """Revoke a token by its id (see `ferry token list`)."""
    with _users(ctx) as store:
        store.revoke_token(token_id)
    render.console.print(f"Token {token_id} revoked.")


maintainers = typer.Typer(
    help="Maintainers a model or deployment names beside the maintainer role.",
    no_args_is_help=True,
)
server.add_typer(maintainers, name="maintainer")
KindOption = Annotated[str, typer.Option("--kind", help="model or deployment.")]


@maintainers.command("add")
def maintainer_add(ctx: typer.Context, name: str, user: str, kind: KindOption = "model") -> None:
    """Let USER move the aliases of model NAME (or change deployment NAME)."""
    _change_maintainer(ctx, kind, name, user, add=True)


@maintainers.command("remove")
def maintainer_remove(ctx: typer.Context, name: str, user: str, kind: KindOption = "model") -> None:
    """Take that back."""
    _change_maintainer(ctx, kind, name, user, add=False)


def _change_maintainer(ctx: typer.Context, kind: str, name: str, user: str, add: bool) -> None:
    with _users(ctx) as store:
        (store.add_maintainer if add else store.remove_maintainer)(kind, name, user)
    render.console.print(f"{user} {'now' if add else 'no longer'} maintains {kind} {name}.")


@maintainers.command("list")
def maintainer_list(ctx: typer.Context, name: str, kind: KindOption = "model") -> None:
    """The users a model or deployment names as its maintainers."""
    with _users(ctx) as store:
        found = store.list_maintainers(kind, name)
    render.console.print("\n".join(found) if found else f"{kind} {name} names no maintainers.")
