"""The team server's users and API tokens over the same SQL database.

A token is ``ferry_<id>_<secret>``: the id finds the row, the secret is compared to its
stored SHA-256 in constant time. The secret is returned once, by ``create_token``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from sqlalchemy import Select, and_, delete, select, update

from ferryml.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import Role, Token, User
from ferryml.store.sql import StorePart

__all__ = ["SESSION_LABEL", "SqlUserStore", "parse_role"]

# The label of the tokens the web UI opens as sessions: they expire, and open no other.
SESSION_LABEL = "web UI session"

_USER_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
_TOKEN = re.compile(r"ferry_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})")
MAINTAINED_KINDS = ("model", "deployment")


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as e:
        raise InvalidArgument(
            f"Role {value!r} is unknown; use one of {', '.join(r.value for r in Role)}."
        ) from e


def _now() -> int:
    return int(time.time() * 1000)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row: Any) -> User:
    name, role, created, disabled = row
    return User(name, Role(role), created, bool(disabled))


class SqlUserStore(StorePart):
    def create_user(self, name: str, role: Role) -> User:
        if not _USER_NAME.fullmatch(name):
            raise InvalidArgument(
                f"User name {name!r} is invalid: lowercase letters, digits and . _ @ -, "
                "at most 64, starting with a letter or digit."
            )
        user = User(name, role, _now())

        def write() -> None:
            with self._write() as conn:
                if conn.execute(select(t.users.c.name).where(t.users.c.name == name)).first():
                    raise AlreadyExists(
                        f"User {name!r} exists already; change the role with "
                        f"`ferry server user set-role {name} ROLE`."
                    )
                conn.execute(
                    t.users.insert().values(
                        name=name, role=role.value, creation_time=user.creation_time
                    )
                )

        _dialect.retry_locked(write)
        return user

    def get_user(self, name: str) -> User:
        with self.sql.engine.connect() as conn:
            row = conn.execute(_select_users().where(t.users.c.name == name)).first()
        if row is None:
            raise NotFound(f"User {name!r} not found. See `ferry server user list`.")
        return _user(row)

    def list_users(self) -> list[User]:
        with self.sql.engine.connect() as conn:
            return [_user(r) for r in conn.execute(_select_users().order_by(t.users.c.name))]

    def update_user(
        self, name: str, *, role: Role | None = None, disabled: bool | None = None
    ) -> User:
        self.get_user(name)
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = role.value
        if disabled is not None:
            values["disabled"] = disabled
        if values:

            def write() -> None:
                with self._write() as conn:
                    conn.execute(update(t.users).where(t.users.c.name == name).values(**values))

            _dialect.retry_locked(write)
        return self.get_user(name)

    # -- tokens ------------------------------------------------------------------------

    def create_token(self, user: str, label: str = "") -> tuple[Token, str]:
        """A new token for ``user``: its record and the secret to show once."""
        self.get_user(user)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        token = Token(token_id, user, label, _now(), None)

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    t.tokens.insert().values(
                        token_id=token_id,
                        user_name=user,
                        secret_hash=_hash(secret),
                        label=label,
                        creation_time=token.creation_time,
                    )
                )

        _dialect.retry_locked(write)
        return token, f"ferry_{token_id}_{secret}"

    def list_tokens(self, user: str | None = None) -> list[Token]:
        query = select(
            t.tokens.c.token_id,
            t.tokens.c.user_name,
            t.tokens.c.label,
            t.tokens.c.creation_time,
            t.tokens.c.revoked_time,
        ).order_by(t.tokens.c.creation_time)
        if user is not None:
            query = query.where(t.tokens.c.user_name == user)
        with self.sql.engine.connect() as conn:
            return [Token(*r) for r in conn.execute(query)]

    def get_token(self, token_id: str) -> Token:
        found = [tok for tok in self.list_tokens() if tok.token_id == token_id]
        if not found:
            raise NotFound(f"Token {token_id!r} not found. See `ferry token list`.")
        return found[0]

    def revoke_token(self, token_id: str) -> Token:
        token = self.get_token(token_id)
        if token.revoked_time is None:

            def write() -> None:
                with self._write() as conn:
                    conn.execute(
                        update(t.tokens)
                        .where(t.tokens.c.token_id == token_id)
                        .values(revoked_time=_now())
                    )

            _dialect.retry_locked(write)
        return self.get_token(token_id)

    def authenticate(
        self, token: str, *, max_age_s: float | None = None, sessions: bool = True
    ) -> User:
        """The user a token belongs to. A web UI session's token (labelled
        ``SESSION_LABEL``) counts only if created within ``max_age_s``, however it is sent,
        and not at all with ``sessions=False`` (a session cannot open another).

        Raises:
            Unauthenticated: the token is malformed, unknown, revoked, expired, or its user
                disabled.
        """
        match = _TOKEN.fullmatch(token.strip())
        if match is None:
            raise Unauthenticated(
                "The token is malformed: ferryml tokens look like ferry_<id>_<secret>. "
                "Create one with `ferry token create`."
            )
        token_id, secret = match.groups()
        query = (
            select(
                t.tokens.c.secret_hash,
                t.tokens.c.revoked_time,
                t.tokens.c.creation_time,
                t.tokens.c.label,
                *_select_users().selected_columns,
            )
            .join(t.users, t.users.c.name == t.tokens.c.user_name)
            .where(t.tokens.c.token_id == token_id)
        )
        with self.sql.engine.connect() as conn:
            row = conn.execute(query).first()
        # Compare even when the id is unknown, so timing does not tell ids apart.
        stored = row[0] if row is not None else "0" * 64
        if not hmac.compare_digest(stored, _hash(secret)) or row is None:
            raise Unauthenticated("The token is unknown. Create one with `ferry token create`.")
        if row[1] is not None:
            raise Unauthenticated(
                f"Token {token_id} was revoked. Create another with `ferry token create`."
            )
        if row[3] == SESSION_LABEL:
            if not sessions:
                raise Unauthenticated("A web UI session's token cannot sign in; use your own.")
            if max_age_s is not None and row[2] < _now() - max_age_s * 1000:
                raise Unauthenticated(f"Session {token_id} has expired; sign in again.")
        user = _user(row[4:])
        if user.disabled:
            raise Unauthenticated(f"User {user.name!r} is disabled; ask an admin.")
        return user

    # -- maintainers named by a model or deployment ------------------------------------

    def add_maintainer(self, kind: str, name: str, user: str) -> None:
        _check_kind(kind)
        self.get_user(user)

        def write() -> None:
            with self._write() as conn:
                exists = conn.execute(
                    select(t.maintainers.c.user_name).where(
                        and_(
                            t.maintainers.c.kind == kind,
                            t.maintainers.c.name == name,
                            t.maintainers.c.user_name == user,
                        )
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        t.maintainers.insert().values(kind=kind, name=name, user_name=user)
                    )

        _dialect.retry_locked(write)

    def remove_maintainer(self, kind: str, name: str, user: str) -> None:
        _check_kind(kind)

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    delete(t.maintainers).where(
                        and_(
                            t.maintainers.c.kind == kind,
                            t.maintainers.c.name == name,
                            t.maintainers.c.user_name == user,
                        )
                    )
                )

        _dialect.retry_locked(write)

    def list_maintainers(self, kind: str, name: str) -> list[str]:
        _check_kind(kind)
        query = (
            select(t.maintainers.c.user_name)
            .where(and_(t.maintainers.c.kind == kind, t.maintainers.c.name == name))
            .order_by(t.maintainers.c.user_name)
        )
        with self.sql.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]


def _select_users() -> Select[Any]:
    return select(t.users.c.name, t.users.c.role, t.users.c.creation_time, t.users.c.disabled)


def _check_kind(kind: str) -> None:
    if kind not in MAINTAINED_KINDS:
        raise InvalidArgument(f"Maintainers are named by a model or a deployment, not {kind!r}.")
