"""The SQL metadata store: SQLite (embedded default) and PostgreSQL, one implementation."""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DatabaseError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ferryml._fork import renew_after_fork
from ferryml.errors import (
    AlreadyExists,
    Conflict,
    IncompatibleStore,
    InvalidArgument,
    NotFound,
    StoreUnavailable,
)
from ferryml.store import _dialect, _run_writes
from ferryml.store import _schema as t
from ferryml.store._migrate import create, current_revision, is_empty, unavailable, upgrade
from ferryml.store._run_rows import run_info, runs_from_rows, select_runs
from ferryml.store._run_writes import Copier
from ferryml.store.entities import (
    ArtifactEntry,
    Experiment,
    Metric,
    Run,
    RunInfo,
    RunStatus,
    ViewType,
)
from ferryml.store.records import (
    Record,
)

__all__ = ["SCHEMA_HEAD", "Copier", "SqlStore", "StorePart"]

# The newest migration this version of ferryml knows; a test keeps it equal to Alembic's head.
SCHEMA_HEAD = "0016"
_KNOWN_REVISIONS = tuple(f"{n:04d}" for n in range(1, int(SCHEMA_HEAD) + 1))


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqlStore:
    """``TrackingStore`` over SQLAlchemy Core.

    Example:
        >>> store = SqlStore("sqlite:///.ferry/ferry.db").open()
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> SqlStore:
        """Connect, and create or upgrade the schema.

        Raises:
            StoreUnavailable: the database cannot be reached or created.
            IncompatibleStore: the store was written by a newer ferryml.
        """
        engine = _dialect.make_engine(self.url)
        try:
            # A store at the newest schema stays there: the lock is taken only to change it.
            if current_revision(engine) != SCHEMA_HEAD:
                with _dialect.migration_lock(engine):
                    self._migrate(engine)
        except DatabaseError as e:  # OperationalError included
            engine.dispose()
            raise unavailable(engine, e) from e
        except StoreUnavailable:  # IncompatibleStore, or the database went away
            engine.dispose()
            raise
        self._engine = engine
        # A forked child must not use the parent's pooled connections; it opens its own.
        renew_after_fork(engine, _dispose_in_child)
        return self

    @staticmethod
    def _migrate(engine: Engine) -> None:
        """Under the migration lock: make a new store at the newest schema in one step, or
        upgrade an older one with the migrations."""
        revision = current_revision(engine)
        if revision == SCHEMA_HEAD:  # another process got there first
            return
        if revision is not None and revision not in _KNOWN_REVISIONS:
            raise IncompatibleStore(
                f"The store at {engine.url.render_as_string()} has schema "
                f"revision {revision!r}, written by a newer version of ferryml "
                f"(this one knows up to {SCHEMA_HEAD!r}). Upgrade ferryml: "
                "pip install -U ferryml."
            )
        if revision is None and is_empty(engine):
            create(engine, SCHEMA_HEAD)
        else:
            upgrade(engine)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreUnavailable("The store is not open; call open() first.")
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _write(self) -> Any:
        return self.engine.execution_options(ferry_write=True).begin()

    # -- experiments -------------------------------------------------------------------

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        now = _now_ms()

        def create() -> str:
            with self._write() as conn:
                result = conn.execute(
                    t.experiments.insert().values(
                        name=name, creation_time=now, last_update_time=now
                    )
                )
                experiment_id = int(result.inserted_primary_key[0])
                if tags:
                    rows = [
                        {"experiment_id": experiment_id, "key": k, "value": v}
                        for k, v in tags.items()
                    ]
                    conn.execute(t.experiment_tags.insert(), rows)
                return str(experiment_id)

        try:
            return _dialect.retry_locked(create)
        except SAIntegrityError as e:
            existing = self.get_experiment_by_name(name)
            if existing is not None and existing.lifecycle_stage == "deleted":
                raise AlreadyExists(
                    f"Experiment {name!r} was deleted, and its name is kept until `ferry gc` "
                    f"removes it for good. Restore it with `ferry experiments restore {name}`, "
                    "or pick another name."
                ) from e
            raise AlreadyExists(
                f"Experiment {name!r} already exists. Use it with set_experiment({name!r}) "
                "or pick another name."
            ) from e

    def get_experiment(self, experiment_id: str) -> Experiment:
        found = self._experiments(t.experiments.c.experiment_id == _experiment_int(experiment_id))
        if not found:
            raise NotFound(
                f"Experiment id {experiment_id!r} not found. See `ferry experiments list`."
            )
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._experiments(t.experiments.c.name == name)
        return found[0] if found else None

    def list_experiments(self, view_type: ViewType = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        return self._experiments(t.experiments.c.lifecycle_stage.in_(ViewType(view_type).stages()))

    def update_experiment(self, experiment_id: str, *, lifecycle_stage: str) -> Experiment:
        """Mark an experiment ``deleted`` or ``active`` again, with its runs (as MLflow
        does). Raises NotFound, InvalidArgument for another stage."""
        stage = _stage(lifecycle_stage)
        number = _experiment_int(experiment_id)
        self.get_experiment(experiment_id)

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    update(t.experiments)
                    .where(t.experiments.c.experiment_id == number)
                    .values(lifecycle_stage=stage, last_update_time=_now_ms())
                )
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.experiment_id == number)
                    .values(lifecycle_stage=stage)
                )

        _dialect.retry_locked(write)
        return self.get_experiment(experiment_id)

    def delete_experiment(self, experiment_id: str) -> None:
        """Remove an experiment marked deleted, and all its runs, for good.

        Raises NotFound, Conflict if the experiment is not marked deleted.
        """
        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != "deleted":
            raise Conflict(
                f"Experiment {experiment.name!r} is active; delete it first with "
                f"`ferry experiments delete {experiment.name}`."
            )
        number = _experiment_int(experiment_id)

        def write() -> None:
            with self._write() as conn:
                run_ids = select(t.runs.c.run_id).where(t.runs.c.experiment_id == number)
                _delete_run_rows(conn, run_ids)
                conn.execute(
                    delete(t.experiment_tags).where(t.experiment_tags.c.experiment_id == number)
                )
                conn.execute(delete(t.experiments).where(t.experiments.c.experiment_id == number))

        _dialect.retry_locked(write)

    def _experiments(self, condition: Any) -> list[Experiment]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.experiments).where(condition).order_by(t.experiments.c.experiment_id)
            ).all()
            ids = [r.experiment_id for r in rows]
            tag_rows = conn.execute(
                select(t.experiment_tags).where(t.experiment_tags.c.experiment_id.in_(ids))
            ).all()
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for tag in tag_rows:
            tags[tag.experiment_id][tag.key] = tag.value
        return [
            Experiment(
                experiment_id=str(r.experiment_id),
                name=r.name,
                lifecycle_stage=r.lifecycle_stage,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                tags=tags[r.experiment_id],
            )
            for r in rows
        ]

    # -- runs --------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        start_time: int,
        user: str,
        description: str = "",
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> RunInfo:
        import uuid

        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != "active":
            raise Conflict(
                f"Experiment {experiment.name!r} is deleted; restore it with "
                f"`ferry experiments restore {experiment.name}` to start runs in it."
            )
        if parent_run_id is not None:
            self.get_run_info(parent_run_id)
        info = RunInfo(
            run_id=run_id or uuid.uuid4().hex,
            experiment_id=str(experiment_id),
            run_name=run_name,
            status=RunStatus.RUNNING,
            start_time=start_time,
            end_time=None,
            lifecycle_stage="active",
            parent_run_id=parent_run_id,
            user=user,
            description=description,
            failure=None,
        )

        def create() -> None:
            with self._write() as conn:
                conn.execute(
                    t.runs.insert().values(
                        run_id=info.run_id,
                        experiment_id=_experiment_int(experiment_id),
                        run_name=run_name,
                        status=info.status.value,
                        start_time=start_time,
                        parent_run_id=parent_run_id,
                        user_id=user,
                        description=description,
                    )
                )
                if tags:
                    rows = [{"run_id": info.run_id, "key": k, "value": v} for k, v in tags.items()]
                    conn.execute(t.tags.insert(), rows)

        _dialect.retry_locked(create)
        return info

    def get_run_info(self, run_id: str) -> RunInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
        if row is None:
            raise NotFound(f"Run {run_id!r} not found. See `ferry runs list`.")
        return run_info(row)

    def get_run(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            found = runs_from_rows(
                conn.execute(select_runs(self.dialect).where(t.runs.c.run_id == run_id))
            )
        if not found:
            raise NotFound(f"Run {run_id!r} not found. See `ferry runs list`.")
        return found[0]

    def get_params(self, run_id: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.params.c.key, t.params.c.value).where(t.params.c.run_id == run_id)
            ).all()
        return {r.key: r.value for r in rows}

    def update_run(self, run_id: str, *, lifecycle_stage: str) -> RunInfo:
        """Mark a run ``deleted`` (hidden from searches) or ``active`` again.

        Raises NotFound, InvalidArgument for another stage, Conflict when restoring a run
        of a deleted experiment.
        """
        stage = _stage(lifecycle_stage)
        info = self.get_run_info(run_id)
        if stage == "active":
            experiment = self.get_experiment(info.experiment_id)
            if experiment.lifecycle_stage != "active":
                raise Conflict(
                    f"Run {run_id!r} belongs to the deleted experiment {experiment.name!r}; "
                    f"restore that with `ferry experiments restore {experiment.name}`."
                )

        def write() -> None:
            with self._write() as conn:
                conn.execute(
                    update(t.runs).where(t.runs.c.run_id == run_id).values(lifecycle_stage=stage)
                )

        _dialect.retry_locked(write)
        return self.get_run_info(run_id)

    def delete_run(self, run_id: str) -> None:
        """Remove a run marked deleted, with everything logged to it, for good.

        Raises NotFound, Conflict if the run is not marked deleted.
        """
        info = self.get_run_info(run_id)
        if info.lifecycle_stage != "deleted":
            raise Conflict(
                f"Run {run_id!r} is active; delete it first with `ferry runs delete {run_id}`."
            )

        def write() -> None:
            with self._write() as conn:
                _delete_run_rows(conn, [run_id])

        _dialect.retry_locked(write)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self.get_run_info(run_id)
        m = t.metrics.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(m.key, m.value, m.is_nan, m.timestamp, m.step)
                .where(m.run_id == run_id, m.key == key)
                .order_by(m.step, m.timestamp)
            ).all()
        return [Metric(r.key, math.nan if r.is_nan else r.value, r.timestamp, r.step) for r in rows]

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        self.get_run_info(run_id)
        a = t.run_artifacts.c
        stmt = select(a.path, a.digest, a.size).where(a.run_id == run_id).order_by(a.path)
        if prefix:
            stmt = stmt.where(or_(a.path == prefix, a.path.startswith(prefix.rstrip("/") + "/")))
        with self.engine.connect() as conn:
            return [ArtifactEntry(r.path, r.digest, r.size) for r in conn.execute(stmt)]

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = "",
        order_by: Sequence[str] | None = (),
        max_results: int = 1000,
        offset: int = 0,
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
    ) -> tuple[list[Run], int | None]:
        from ferryml.store._search_sql import finite_lead_page, ordered_page, where_clause
        from ferryml.store.filters import parse_filter, parse_order_by

        if max_results < 1 or max_results > 50_000:
            raise InvalidArgument(f"max_results must be between 1 and 50000; got {max_results}.")
        expr = parse_filter(filter_string)
        stmt = select(t.runs.c.run_id).where(
            t.runs.c.experiment_id.in_([_experiment_int(e) for e in experiment_ids]),
            t.runs.c.lifecycle_stage.in_(ViewType(run_view_type).stages()),
        )
        if expr is not None:
            stmt = stmt.where(where_clause(expr, self.dialect))
        keys, limit = parse_order_by(order_by), max_results + 1

        def fold(page: Any) -> list[Run]:
            # The page is chosen first and the values folded for its runs alone, in one
            # statement: folding every run sorted costs 3 s at 10,000 runs, a page 70 ms.
            page = page.subquery("page")
            query = (
                select_runs(self.dialect)
                .select_from(page.join(t.runs, t.runs.c.run_id == page.c.run_id))
                .order_by(page.c.pos)
            )
            return runs_from_rows(conn.execute(query))

        with self.engine.connect() as conn:
            lead = finite_lead_page(stmt, keys, self.dialect, limit=limit, offset=offset)
            # Counted before anything is folded: a page the runs with a value do not fill
            # (every run of a small experiment) would otherwise be folded twice.
            if lead is not None and _count(conn, _unordered(lead)) == limit:
                runs = fold(lead)
            else:
                runs = fold(ordered_page(stmt, keys, self.dialect, limit=limit, offset=offset))
        more = len(runs) > max_results
        return runs[:max_results], (offset + max_results if more else None)

    # -- batched writes ----------------------------------------------------------------

    def write_records(self, records: Sequence[Record]) -> None:
        """Apply a batch of records in one transaction; applying it again changes nothing.

        Records naming a run that does not exist are dropped: there is nothing to attach
        them to, and keeping them would block every later batch.
        """
        if records:
            _dialect.retry_locked(lambda: _run_writes.write_records(self.engine, records))

    def write_metric_rows(self, run_id: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write many metric values of one run at once, as tuples in the ``metrics`` table's
        column order (``MetricRecord``'s: run_id, key, step, timestamp, value, is_nan), in
        one transaction; writing them again changes nothing. For bulk loads (an import),
        where building a record per value costs more than storing it.

        Raises:
            NotFound: the run does not exist.
            InvalidArgument: a row names another run, or a key holds a NUL character.
        """
        if rows:
            _dialect.retry_locked(lambda: _run_writes.write_metric_rows(self.engine, run_id, rows))

    @contextlib.contextmanager
    def sqlite_copier(self, database: str, select_sql: str) -> Iterator[Copier]:
        """For bulk loads into an SQLite store (an import), database to database: a
        function copying one existing run's metric values from another SQLite file in one
        transaction, without a value passing through Python; it returns how many were new
        (copying again changes nothing). ``select_sql`` reads them from ``database``
        (attached as ``source``) as the ``metrics`` table's columns, by name, given the run
        id as its one parameter; rows of other runs are left out. The copier raises
        NotFound for a run that does not exist, InvalidArgument for a key with a NUL.

        Raises:
            InvalidArgument: the store is not SQLite.
        """
        if self.dialect != "sqlite":
            raise InvalidArgument(f"Values are copied from SQLite into SQLite, not {self.dialect}.")
        with _run_writes.sqlite_copier(self.engine, database, select_sql) as copy:
            yield copy

    def mark_killed(self, run_ids: Iterable[str]) -> None:
        """Mark runs still RUNNING as KILLED: their process died without ending them."""
        ids = list(run_ids)
        if not ids:
            return

        def mark() -> None:
            with self._write() as conn:
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.run_id.in_(ids), t.runs.c.status == RunStatus.RUNNING.value)
                    .values(
                        status=RunStatus.KILLED.value,
                        end_time=_now_ms(),
                        failure="The process running it stopped without ending the run.",
                    )
                )

        _dialect.retry_locked(mark)


# -- helpers -----------------------------------------------------------------------------


class StorePart:
    """One part of the metadata store (registry, monitors, ...) over an open ``SqlStore``;
    ``close`` closes that store."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    @property
    def sql(self) -> SqlStore:
        """The open store underneath, for other parts over the same connections."""
        return self._store

    def close(self) -> None:
        self._store.close()

    def _write(self) -> Any:
        return self._store.engine.execution_options(ferry_write=True).begin()


def _count(conn: Connection, stmt: Select[Any]) -> int:
    return int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())


def _unordered(page: Select[Any]) -> Select[Any]:
    """The runs of ``page`` (a select of run_id, pos) without their order: as many rows
    for a count, without sorting them (a quarter of the time at 1,000 runs)."""
    return page.with_only_columns(t.runs.c.run_id).order_by(None)


def _dispose_in_child(engine: Engine) -> None:
    engine.dispose(close=False)


def _experiment_int(experiment_id: str | int) -> int:
    text = str(experiment_id)
    # int() alone takes '1_0', ' 3 ' and '+3'; ids fit the INTEGER column.
    # Past 10 digits it is no id (and int() refuses 4,300 digits and more).
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) >= 2**31:
        raise NotFound(
            f"Experiment id {experiment_id!r} not found: ids are whole numbers. "
            "See `ferry experiments list`."
        )
    return int(text)


def _stage(lifecycle_stage: str) -> str:
    if lifecycle_stage not in ("active", "deleted"):
        raise InvalidArgument(f"Lifecycle stage {lifecycle_stage!r} is not 'active' or 'deleted'.")
    return lifecycle_stage


def _delete_run_rows(conn: Connection, run_ids: Any) -> None:
    """Delete runs (a list of ids or a subquery) and every row that belongs to them."""
    for table in (
        t.metrics,
        t.latest_metrics,
        t.params,
        t.tags,
        t.run_artifacts,
        t.run_inputs,
        t.mlflow_inputs,
        t.runs,
    ):
        conn.execute(delete(table).where(table.c.run_id.in_(run_ids)))
