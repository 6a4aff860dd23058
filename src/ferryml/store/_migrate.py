"""Opening a database as a store: which schema revision it holds, creating it or
upgrading it with Alembic, and the one-line error when it cannot be opened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

from ferryml.errors import StoreUnavailable
from ferryml.store import _dialect

__all__ = ["MIGRATIONS", "create", "current_revision", "is_empty", "unavailable", "upgrade"]

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


def is_empty(engine: Engine) -> bool:
    """Whether the database (its default schema) holds none of the store's tables."""
    from ferryml.store._schema import metadata

    with engine.connect() as conn:
        return not set(inspect(conn).get_table_names()) & set(metadata.tables)


def create(engine: Engine, head: str) -> None:
    """Build the newest schema in an empty database in one transaction, stamped at ``head``
    as Alembic's ``stamp`` would (Alembic's advice for new databases): a fraction of the
    time of running every migration, and without importing Alembic. A test keeps the
    result identical to what the migrations build."""
    from ferryml.store._schema import metadata

    with engine.execution_options(ferry_write=True).begin() as conn:
        metadata.create_all(conn, checkfirst=False)
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})
