"""Who may change something through the model server. Over a team server's store, sending
feedback needs a writer's token of that team server, checked there (``/api/v1/whoami``)
and then used for the write, so the team server records who sent it. Over a local store
there are no users: anyone who can reach the server may send feedback, so it listens on
loopback unless asked."""

from __future__ import annotations

import dataclasses

from ferryml.config import Settings
from ferryml.errors import PermissionDenied, StoreUnavailable, Unauthenticated
from ferryml.store.entities import Role

__all__ = ["writer_settings"]


async def writer_settings(settings: Settings, authorization: str | None) -> Settings:
    """``settings`` to write with on behalf of the caller: unchanged over a local store,
    with the caller's token over a team server once it says the token is a writer's.

    Raises:
        Unauthenticated: no token, or the team server refused it.
        PermissionDenied: the token's user is a reader.
        StoreUnavailable: the team server could not be asked.
    """
    server = settings.store_url
    if not server.startswith(("http://", "https://")):
        return settings
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Sending feedback needs a writer's token of the team server this model server "
            "uses: send the header 'Authorization: Bearer TOKEN' (see `ferry token create`)."
        )
    token = token.strip()
    import httpx  # here: a server over a local store never needs it, and it takes a while

    try:
        async with httpx.AsyncClient(base_url=server, timeout=10) as client:
            answer = await client.get(
                "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as e:
        raise StoreUnavailable(f"The team server could not check the token: {e}.") from e
    if answer.status_code == 401:
        raise Unauthenticated("The team server refused this token (unknown, revoked or expired).")
    if answer.status_code != 200:
        raise StoreUnavailable(
            f"The team server answered {answer.status_code} when asked who the token is."
        )
    user = answer.json()
    if not Role(user["role"]).allows(Role.WRITER):
        raise PermissionDenied(
            f"Sending feedback needs the writer role; {user['name']!r} is a {user['role']}."
        )
    return dataclasses.replace(settings, token=token)
