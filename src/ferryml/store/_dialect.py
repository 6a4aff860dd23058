"""Everything that differs between SQLite and PostgreSQL lives here."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    String,
    Table,
    case,
    cast,
    create_engine,
    event,
    func,
    literal,
    text,
)
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError

from ferryml.errors import InvalidArgument, StoreUnavailable

T = TypeVar("T")

# How large an SQLite store's write-ahead log is left once checkpointed.
WAL_LIMIT_BYTES = 4 * 1024 * 1024
_LOCK_ADVISORY_KEY = 0x66657272  # "ferr": serializes migrations across PostgreSQL clients


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings each backend needs for concurrent writers."""
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy raises ArgumentError with a terse message
        raise InvalidArgument(
            f"Store URL {url!r} is not a database URL. Use sqlite:///path/to/ferry.db "
            "or postgresql+psycopg://user@host:5432/db."
        ) from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
        event.listen(engine, "before_cursor_execute", _refuse_nul)
        event.listen(engine, "handle_error", _unreachable)
        return engine
    raise InvalidArgument(
        f"Store URL {url!r} names backend {backend!r}; ferryml supports sqlite and postgresql."
    )


def _unreachable(context: ExceptionContext) -> None:
    # A database that is down, restarting or gone mid-query is StoreUnavailable (a 503 on
    # the servers, a retry in the journal), not an unexpected error. The pool's own
    # pre-ping is left to reconnect by itself.
    error = context.original_exception
    state = str(getattr(error, "sqlstate", None) or "")
    if context.is_pre_ping:
        return
    if context.is_disconnect or context.connection is None or state[:2] in ("08", "57"):
        url = context.engine.url.render_as_string() if context.engine else "PostgreSQL"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StoreUnavailable(
            f"Cannot reach the store {url}: {reason}. Check that the database is running "
            "and reachable (FERRY_STORE); ferryml works again by itself once it is back."
        ) from error


def _unwritable(context: ExceptionContext) -> None:
    # A full disk (or a failing one) under an SQLite store is StoreUnavailable, saying so;
    # "database is locked" stays an OperationalError, which retry_locked waits out.
    error = context.original_exception
    name = str(getattr(error, "sqlite_errorname", ""))
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        database = context.engine.url.database if context.engine else None
        raise StoreUnavailable(
            f"Cannot write the store {database}: {error} ({name}). Free space on its disk, "
            "or check the disk, then retry; logged values wait in the journal meanwhile."
        ) from error


def _refuse_nul(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    # PostgreSQL's text cannot hold NUL (psycopg fails mid-request); both stores refuse it.
    for row in parameters if many else (parameters,):
        values = row.values() if isinstance(row, dict) else row or ()
        for value in values:
            if isinstance(value, str) and "\x00" in value:
                raise InvalidArgument(
                    f"Text {value[:40]!r} holds a NUL character (\\x00), which the store "
                    "cannot keep; remove it."
                )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(
                f"Cannot create the store folder {folder}: {e.strerror or e}. "
                "Set FERRY_HOME (or FERRY_STORE) to a writable location."
            ) from e
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    event.listen(engine, "before_cursor_execute", _refuse_nul)  # as PostgreSQL must
    event.listen(engine, "handle_error", _unwritable)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Manage transactions ourselves so that writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        # SQLite's own checkpoint every 1,000 pages (4 MB), and the log cut back to that
        # size once checkpointed: a longer interval left a 34 MB log behind 1,000 small
        # runs (a 4 MB database) and saved no CPU in bulk loads.
        cursor.execute("PRAGMA wal_autocheckpoint=1000")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, where busy_timeout applies, instead of
        # failing with "database is locked" when a reader later upgrades to a writer.
        if conn.get_execution_options().get("ferry_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold a lock across processes while the schema is checked and upgraded."""
    if is_sqlite(engine):
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        from filelock import FileLock  # only when the schema changes: a costly import

        with FileLock(f"{database}.lock"):
            yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ADVISORY_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ADVISORY_KEY})
            conn.commit()


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping any whose primary key exists already (idempotent replays)."""
    if not rows:
        return
    conn.execute(_insert_ignore_statement(conn.dialect.name, table), list(rows))


@functools.lru_cache(maxsize=256)
def _insert_ignore_statement(dialect: str, table: Table) -> Any:
    return _insert_of(dialect)(table).on_conflict_do_nothing()


def insert_ignore_fast(conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """``insert_ignore`` of tuples in column order through the driver's ``executemany``, for
    large batches: building SQLAlchemy parameters costs more than SQLite's insert itself."""
    if not rows:
        return
    names = [c.name for c in table.columns]
    if conn.dialect.name == "sqlite":
        sql = (
            f"INSERT OR IGNORE INTO {table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
    else:
        sql = (
            f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT DO NOTHING"
        )
    conn.exec_driver_sql(sql, list(rows))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    where: Callable[[Any, Any], Any] | None = None,
) -> None:
    """Insert rows or overwrite the non-key columns; ``where(table, excluded)`` may limit
    which existing rows are overwritten (a module-level function: the statement is built
    once per table, keys and ``where``)."""
    if not rows:
        return
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(keys), where), list(rows))


@functools.lru_cache(maxsize=256)
def _upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], where: Callable[[Any, Any], Any] | None
) -> Any:
    # Building the statement costs more than running it for a row or two (a log_metric).
    stmt = _insert_of(dialect)(table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    condition = where(table, stmt.excluded) if where is not None else None
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates, where=condition)


def _insert_of(dialect: str) -> Any:
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert
    from sqlalchemy.dialects import postgresql

    return postgresql.insert


def is_lock_error(error: BaseException) -> bool:
    if not isinstance(error, OperationalError):
        return False
    message = str(error.orig).lower()
    return "database is locked" in message or "database is busy" in message


def retry_locked(operation: Callable[[], T], *, attempts: int = 20) -> T:
    """Run ``operation``, retrying while SQLite reports the database locked past its timeout."""
    try:  # tenacity is imported only to retry: a command's first write needs no 65 ms more
        return operation()
    except OperationalError as e:
        if attempts < 2 or not is_lock_error(e):
            raise
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    retrying = Retrying(
        retry=retry_if_exception(is_lock_error),
        stop=stop_after_attempt(attempts - 1),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
    return retrying(operation)


def json_object_agg(dialect: str, key: Any, value: Any) -> Any:
    """An aggregate building ``{key: value}`` of the grouped rows, as JSON."""
    if dialect == "sqlite":
        return func.json_group_object(key, value)
    return func.json_object_agg(key, value)


def json_rows_agg(dialect: str, *columns: Any) -> Any:
    """An aggregate building ``[[col, …], …]`` of the grouped rows, as JSON."""
    if dialect == "sqlite":
        return func.json_group_array(func.json_array(*columns))
    return func.json_agg(func.json_build_array(*columns))


def load_json(value: Any) -> Any:
    """A JSON value from the database: SQLite returns text, psycopg decodes it already.
    orjson decodes a search's thousand documents in a quarter of json's time."""
    return orjson.loads(value) if isinstance(value, str) else value


def json_metrics_agg(dialect: str, key: Any, value: Any, is_nan: Any) -> Any:
    """An aggregate folding metric rows into ``[[key, …], [value, …]]`` as JSON, read back
    exactly by ``load_metrics``. SQLite's JSON keeps only 15 digits, so there each value is
    printed with 18 (its printf misses the last digit of some numbers above 1e100 with 17)
    and the document joined as text: ``json()`` of each printed number cost as much as the
    rest of the fold. NaN and infinities print as ``NaN`` and ``Inf``, which
    ``load_metrics`` reads apart. PostgreSQL keeps every digit, and writes "NaN" and
    "Infinity" as strings."""
    if dialect == "sqlite":
        number = case((is_nan, literal("NaN")), else_=func.printf("%!.17e", value))
        keys = func.json_group_array(key)
        return literal("[", String) + keys + ",[" + func.group_concat(number) + "]]"
    from sqlalchemy.dialects.postgresql import aggregate_order_by  # not for SQLite's stores

    nan = cast(literal("NaN"), Float)
    return func.json_build_array(
        func.json_agg(aggregate_order_by(key, key)),
        func.json_agg(aggregate_order_by(case((is_nan, nan), else_=value), key)),
    )


def load_metrics(document: Any) -> dict[str, float]:
    """The ``{key: value}`` of a ``json_metrics_agg`` document (None when no rows)."""
    if document is None:
        return {}
    if isinstance(document, str):  # SQLite
        try:
            keys, values = orjson.loads(document)
        except orjson.JSONDecodeError:  # NaN or an infinity among the numbers
            split = document.rindex(",[")
            keys = orjson.loads(document[1:split])
            values = document[split + 2 : -2].split(",")
        else:
            return dict(zip(keys, values, strict=True))
    else:  # PostgreSQL, decoded by psycopg: whole numbers as int, "NaN" and "Infinity"
        keys, values = document
        if keys is None:
            return {}
    return dict(zip(keys, map(float, values), strict=True))
