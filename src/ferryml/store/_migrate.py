"""Opening a database as a store: which schema revision it holds, upgrading it with
Alembic, and the one-line error when it cannot be opened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

from ferryml.errors import StoreUnavailable
from ferryml.store import _dialect

__all__ = ["MIGRATIONS", "current_revision", "unavailable", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def unavailable(engine: Engine, error: DatabaseError) -> StoreUnavailable:
    database = engine.url.database
    if _dialect.is_sqlite(engine) and not isinstance(error, OperationalError) and database:
        # sqlite3 says "file is not a database" for anything but an SQLite file
        return StoreUnavailable(
            f"The store file {database} cannot be read as an SQLite database "
            f"({error.orig}). Move it aside, or point FERRY_STORE (or FERRY_HOME) at "
            "another location."
        )
    return StoreUnavailable(
        f"Cannot open the store {engine.url.render_as_string()}: {error.orig}. "
        "Check that the database is running and the location is writable "
        "(FERRY_STORE, FERRY_HOME)."
    )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError) as e:
            if "alembic_version" not in str(e.orig) and "no such table" not in str(e.orig):
                raise
            return None


def upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
