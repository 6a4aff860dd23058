"""Errors raised by ferryml.

Every error derives from ``FerryError``; the subclass names what the caller does next::

    FerryError
    ├── NotFound (LookupError)        the thing named does not exist: check the name or id
    ├── AlreadyExists                 pick another name, or get the existing one
    ├── InvalidArgument (ValueError)  fix the value passed in
    │   ├── ConfigError               ferry.yaml is wrong: fix the file, line and field named
    │   └── ValidationFailed          the data broke its expectations: fix the data or them
    ├── Conflict                      the value clashes with what is recorded (e.g. a param)
    ├── IntegrityError                stored bytes do not match their recorded digest
    ├── StoreUnavailable              the store cannot be reached, created or written
    │   └── IncompatibleStore         the store was written by a newer ferryml: upgrade
    ├── MissingExtra (ImportError)    a feature needs an optional extra: install it
    ├── Unauthenticated               no valid token was given: set FERRY_TOKEN
    └── PermissionDenied              the user's role is too small: ask an admin

Callers branch on these types, never on message text.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "ConfigError",
    "Conflict",
    "FerryError",
    "IncompatibleStore",
    "IntegrityError",
    "InvalidArgument",
    "MissingExtra",
    "NotFound",
    "PermissionDenied",
    "StoreUnavailable",
    "Unauthenticated",
    "ValidationFailed",
]


class FerryError(Exception):
    """Root of every error ferryml raises on purpose."""


class NotFound(FerryError, LookupError):
    """The experiment, run, artifact or other object named does not exist."""


class AlreadyExists(FerryError):
    """An object with this name already exists."""


class InvalidArgument(FerryError, ValueError):
    """A value passed in is malformed or out of range."""


class ConfigError(InvalidArgument):
    """The project's ``ferry.yaml`` is wrong; the message names the file, line and field."""


class ValidationFailed(InvalidArgument):
    """Data did not meet its expectations; ``report`` holds every result, when known."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[type[ValidationFailed], tuple[str, object | None]]:
        # keeps the report when the error crosses a process boundary (Dask, multiprocessing)
        return type(self), (str(self), self.report)


class Conflict(FerryError):
    """The request clashes with recorded state, such as a param logged with another value."""


class IntegrityError(FerryError):
    """Stored content does not match the digest recorded for it."""


class StoreUnavailable(FerryError):
    """The metadata or artifact store cannot be reached, created or written."""


class IncompatibleStore(StoreUnavailable):
    """The store's schema was written by a newer version of ferryml."""


class MissingExtra(FerryError, ImportError):
    """A feature needs a library that an optional extra installs; the message names the
    ``pip install 'ferryml[...]'`` command."""


class Unauthenticated(FerryError):
    """The request carried no token, or one that is unknown, revoked or malformed."""


class PermissionDenied(FerryError):
    """The authenticated user's role does not allow the action; the message names the role
    needed."""
