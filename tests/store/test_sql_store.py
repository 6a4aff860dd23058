"""The SQL store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ferryml.errors import (
    AlreadyExists,
    IncompatibleStore,
    InvalidArgument,
    NotFound,
    StoreUnavailable,
)
from ferryml.store.entities import RunStatus
from ferryml.store.records import (
    ArtifactRecord,
    EndRecord,
    InputRecord,
    ParamRecord,
    TagRecord,
    metric_record,
)
from ferryml.store.sql import SCHEMA_HEAD, SqlStore


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = SqlStore(store_url).open()
    yield s
    s.close()


def _run(store: SqlStore, name: str = "r") -> str:
    experiment_id = store.get_experiment_by_name("e") or None
    eid = experiment_id.experiment_id if experiment_id else store.create_experiment("e")
    return store.create_run(eid, run_name=name, start_time=1000, user="u").run_id


def test_experiment_round_trip_with_tags(store: SqlStore) -> None:
    eid = store.create_experiment("churn", {"team": "ml"})
    experiment = store.get_experiment(eid)
    assert (experiment.name, dict(experiment.tags)) == ("churn", {"team": "ml"})
    assert store.get_experiment_by_name("churn") == experiment
    assert [e.name for e in store.list_experiments()] == ["churn"]


def test_duplicate_experiment_name_is_already_exists(store: SqlStore) -> None:
    store.create_experiment("churn")
    with pytest.raises(AlreadyExists, match="Experiment 'churn' already exists"):
        store.create_experiment("churn")


def test_unknown_experiment_and_run_are_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="Experiment id '42' not found"):
        store.get_experiment("42")
    with pytest.raises(NotFound, match="Run '0+' not found. See `ferry runs list`"):
        store.get_run("0" * 32)
    with pytest.raises(NotFound, match="whole numbers"):
        store.get_experiment("abc")


def test_records_are_applied_and_replaying_them_changes_nothing(store: SqlStore) -> None:
    run_id = _run(store)
    batch = [
        metric_record(run_id, "loss", 0.9, 10, 0),
        metric_record(run_id, "loss", 0.5, 20, 1),
        ParamRecord(run_id, "lr", "0.1"),
        TagRecord(run_id, "team", "ml"),
        ArtifactRecord(run_id, "model/model.pkl", "ab" * 32, 10),
        InputRecord(run_id, "iris", "3", "cd" * 32, "training"),
        EndRecord(run_id, "FINISHED", 99, None),
    ]
    store.write_records(batch)
    store.write_records(batch)
    run = store.get_run(run_id)
    assert run.info.status is RunStatus.FINISHED and run.info.end_time == 99
    assert dict(run.data.params) == {"lr": "0.1"}
    assert dict(run.data.tags) == {"team": "ml"}
    assert dict(run.data.metrics) == {"loss": 0.5}
    assert [(m.step, m.value) for m in store.get_metric_history(run_id, "loss")] == [
        (0, 0.9),
        (1, 0.5),
    ]
    assert [a.path for a in store.list_artifacts(run_id)] == ["model/model.pkl"]
    assert [(i.name, i.version) for i in run.inputs] == [("iris", "3")]


def test_latest_metric_is_the_highest_step_even_when_logged_out_of_order(
    store: SqlStore,
) -> None:
    run_id = _run(store)
    store.write_records([metric_record(run_id, "acc", 0.8, 50, 5)])
    store.write_records([metric_record(run_id, "acc", 0.1, 60, 2)])
    assert store.get_run(run_id).data.metrics["acc"] == 0.8
    store.write_records([metric_record(run_id, "acc", 0.9, 70, 5)])
    assert store.get_run(run_id).data.metrics["acc"] == 0.9


def test_nan_and_infinite_metrics_round_trip(store: SqlStore) -> None:
    run_id = _run(store)
    store.write_records(
        [
            metric_record(run_id, "a", math.nan, 1, 0),
            metric_record(run_id, "b", math.inf, 1, 0),
            metric_record(run_id, "c", -math.inf, 1, 0),
            metric_record(run_id, "d", 0.1 + 0.2, 1, 0),
        ]
    )
    metrics = store.get_run(run_id).data.metrics
    assert math.isnan(metrics["a"]) and metrics["b"] == math.inf and metrics["c"] == -math.inf
    assert metrics["d"] == 0.1 + 0.2  # full precision, not a 15-digit rendering


def test_search_gives_every_metric_back_exactly(store: SqlStore) -> None:
    # 17 digits, extremes and whole numbers; NaN and infinities beside odd keys in another run
    exact = {"third": 1 / 3, "tiny": 5e-324, "huge": 1.7976931348623157e308,
             "neg": -0.1 - 0.2, "big": 1e20, "whole": 2.0, 'q"u\\o': 0.1 + 0.2}  # fmt: skip
    plain, special = _run(store, "plain"), _run(store, "special")
    store.write_records([metric_record(plain, k, v, 1, 0) for k, v in exact.items()])
    odd = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "x,[y]": 1 / 3}
    store.write_records([metric_record(special, k, v, 1, 0) for k, v in odd.items()])
    eid = store.get_experiment_by_name("e").experiment_id  # type: ignore[union-attr]
    runs, _ = store.search_runs([eid], order_by=["attributes.run_name"])
    assert [r.info.run_name for r in runs] == ["plain", "special"]
    assert runs[0].data.metrics == exact
    assert all(type(v) is float for v in runs[0].data.metrics.values())
    found = runs[1].data.metrics
    assert math.isnan(found["nan"]) and found["inf"] == math.inf and found["-inf"] == -math.inf
    assert found["x,[y]"] == 1 / 3
    assert store.get_run(special).data.metrics.keys() == odd.keys()


def test_records_for_a_missing_run_are_dropped_and_the_rest_applied(store: SqlStore) -> None:
    run_id = _run(store)
    store.write_records(
        [metric_record("f" * 32, "x", 1.0, 1, 0), metric_record(run_id, "x", 2.0, 1, 0)]
    )
    assert store.get_run(run_id).data.metrics == {"x": 2.0}


def test_mark_killed_changes_only_running_runs(store: SqlStore) -> None:
    running, finished = _run(store, "a"), _run(store, "b")
    store.write_records([EndRecord(finished, "FINISHED", 5, None)])
    store.mark_killed([running, finished])
    assert store.get_run_info(running).status is RunStatus.KILLED
    assert store.get_run_info(finished).status is RunStatus.FINISHED


def test_artifacts_are_listed_under_a_folder_prefix(store: SqlStore) -> None:
    run_id = _run(store)
    store.write_records(
        [
            ArtifactRecord(run_id, p, "ab" * 32, 1)
            for p in ("plots/a.png", "plots/b.png", "plotsx.txt", "m.pkl")
        ]
    )
    assert [a.path for a in store.list_artifacts(run_id, "plots")] == ["plots/a.png", "plots/b.png"]
    assert [a.path for a in store.list_artifacts(run_id, "m.pkl")] == ["m.pkl"]


def test_search_pages_through_all_runs_in_order(store: SqlStore) -> None:
    ids = [_run(store, f"r{i}") for i in range(5)]
    store.write_records([metric_record(r, "acc", i / 10, 1, 0) for i, r in enumerate(ids)])
    eid = store.get_experiment_by_name("e").experiment_id  # type: ignore[union-attr]
    first, offset = store.search_runs([eid], "metrics.acc >= 0.1", ["metrics.acc DESC"], 2)
    assert offset == 2
    second, offset = store.search_runs([eid], "metrics.acc >= 0.1", ["metrics.acc DESC"], 2, offset)
    assert offset is None
    assert [r.info.run_id for r in first + second] == ids[:0:-1]
    # Each run comes with its own values, not a neighbour's in the page.
    assert [r.data.metrics["acc"] for r in first + second] == [0.4, 0.3, 0.2, 0.1]
    assert [r.info.run_name for r in first + second] == ["r4", "r3", "r2", "r1"]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 10])
def test_search_by_a_metric_pages_on_past_the_runs_with_a_value(store: SqlStore, size: int) -> None:
    """Pages led by the runs with a value (read off the index) and pages reaching the NaN
    and missing ones (sorted whole) make one order together."""
    values = {"r0": 0.3, "r1": math.nan, "r2": 0.1, "r3": 0.5, "r4": None, "r5": 0.2}
    ids = {name: _run(store, name) for name in values}
    store.write_records(
        [metric_record(ids[n], "acc", v, 1, 0) for n, v in values.items() if v is not None]
    )
    eid = store.get_experiment_by_name("e").experiment_id  # type: ignore[union-attr]
    for order, expected in [
        ("metrics.acc DESC", ["r3", "r0", "r5", "r2", "r1", "r4"]),
        ("metrics.acc", ["r2", "r5", "r0", "r3", "r1", "r4"]),
    ]:
        names: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page, offset = store.search_runs([eid], "", [order], size, offset)
            names += [r.info.run_name for r in page]
        assert names == expected


def test_search_rejects_out_of_range_max_results(store: SqlStore) -> None:
    with pytest.raises(InvalidArgument, match="max_results must be between 1 and 50000"):
        store.search_runs(["1"], max_results=0)


@pytest.mark.migrations
def test_new_store_is_at_the_newest_schema(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD


def test_schema_head_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from ferryml.store import _migrate, sql

    scripts = ScriptDirectory(str(_migrate.MIGRATIONS))
    assert scripts.get_current_head() == SCHEMA_HEAD
    assert set(sql._KNOWN_REVISIONS) == {s.revision for s in scripts.walk_revisions()}


def test_store_written_by_a_newer_ferryml_is_refused_and_left_alone(store_url: str) -> None:
    store = SqlStore(store_url).open()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(IncompatibleStore, match="newer version of ferryml.*Upgrade ferryml"):
        SqlStore(store_url).open()
    reopened = SqlStore(store_url)
    with pytest.raises(IncompatibleStore):
        reopened.open()


def test_unwritable_store_location_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="Cannot create the store folder.*FERRY_HOME"):
        SqlStore(f"sqlite:///{blocker}/sub/ferry.db").open()


def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="Cannot (open|reach) the store"):
        SqlStore("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2").open()


def test_malformed_store_url_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="not a database URL"):
        SqlStore("not a url").open()
    with pytest.raises(InvalidArgument, match="supports sqlite and postgresql"):
        SqlStore("mysql://localhost/x").open()


@pytest.mark.migrations
def test_migrations_build_exactly_the_tables_the_code_uses(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ferryml.store import _dialect
    from ferryml.store._migrate import upgrade
    from ferryml.store._schema import metadata

    engine = _dialect.make_engine(store_url)
    upgrade(engine)  # every migration, as an old store's upgrade runs them
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def _schema_of(url: str) -> dict[str, Any]:
    """Everything the inspector tells of each table, and on SQLite each object's SQL (which
    alone shows WITHOUT ROWID), whitespace and quotes aside (a migration's rebuilt table is
    named "quoted", the same name to SQLite)."""
    from sqlalchemy import inspect

    from ferryml.store import _dialect

    engine = _dialect.make_engine(url)
    with engine.connect() as conn:
        found = inspect(conn)
        schema: dict[str, Any] = {
            name: {
                "columns": [{**c, "type": repr(c["type"])} for c in found.get_columns(name)],
                "primary_key": found.get_pk_constraint(name),
                "foreign_keys": sorted(map(repr, found.get_foreign_keys(name))),
                "indexes": sorted(map(repr, found.get_indexes(name))),
                "unique": sorted(map(repr, found.get_unique_constraints(name))),
                "checks": sorted(map(repr, found.get_check_constraints(name))),
            }
            for name in found.get_table_names()
        }
        if _dialect.is_sqlite(engine):
            rows = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master")
            schema["sqlite_master"] = sorted((kind, name, _flat(sql)) for kind, name, sql in rows)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return {"tables": schema, "version": version}


def _flat(sql: str | None) -> str:
    return re.sub(r"\s*([(),])\s*", r"\1", " ".join((sql or "").replace('"', "").split()))


@pytest.mark.migrations
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_new_store_made_in_one_step_is_the_schema_the_migrations_build(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, make_store: Any
) -> None:
    from ferryml.store import _dialect
    from ferryml.store._migrate import upgrade

    with (
        make_store(kind, tmp_path / "migrated", request) as migrated_url,
        make_store(kind, tmp_path / "created", request) as created_url,
    ):
        engine = _dialect.make_engine(migrated_url)
        upgrade(engine)
        engine.dispose()
        SqlStore(created_url).open().close()  # empty: made from the tables in one step
        migrated, created = _schema_of(migrated_url), _schema_of(created_url)
    assert len(migrated["tables"]) > 30
    assert created == migrated


def test_a_new_store_is_made_without_running_the_migrations(tmp_path: Path) -> None:
    code = (
        "import sys; from ferryml.store.sql import SqlStore; "
        f"SqlStore('sqlite:///{tmp_path / 'ferry.db'}').open().close(); "
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "False\n")


def test_stores_opened_one_after_another_share_one_fork_hook(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import os
        hooks = []
        register = os.register_at_fork
        def counting(**callbacks):
            hooks.extend(f for f in callbacks.values() if f.__module__.startswith("ferryml"))
            register(**callbacks)
        os.register_at_fork = counting
        from ferryml.store.sql import SqlStore
        for _ in range(30):  # as a server opens one per request
            SqlStore("sqlite:///{tmp_path / "ferry.db"}").open().close()
        store = SqlStore("sqlite:///{tmp_path / "ferry.db"}").open()
        store.create_experiment("parent")
        pid = os.fork()
        if pid == 0:  # the child opens connections of its own
            store.create_experiment("child")
            os._exit(0)
        os.waitpid(pid, 0)
        print(len(hooks), sorted(e.name for e in store.list_experiments()))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "1 ['child', 'parent']\n"


def test_text_with_a_nul_character_is_refused_as_bad_input(store: SqlStore) -> None:
    # PostgreSQL's text cannot hold NUL: both stores refuse it up front, never a driver error.
    with pytest.raises(InvalidArgument, match="NUL character"):
        store.create_experiment("a\x00b")
    with pytest.raises(InvalidArgument, match="NUL character"):
        store.get_experiment_by_name("a\x00b")
    assert store.list_experiments() == []


def test_metric_rows_of_a_bulk_load_are_stored_once_with_their_latest_value(
    store: SqlStore,
) -> None:
    run_id = _run(store)
    rows = [(run_id, "loss", s, 1000 + s, 1 / (s + 1), False) for s in range(2000)]
    rows += [(run_id, "odd", 0, 5, 0.0, True)]
    rows += [(run_id, "tie", 3, 7, 2.0, False), (run_id, "tie", 3, 7, 1.0, False)]
    store.write_metric_rows(run_id, rows)
    store.write_metric_rows(run_id, rows[:10])  # again: nothing twice
    history = store.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1 / (s + 1)) for s in range(2000)]
    metrics = store.get_run(run_id).data.metrics
    assert metrics["loss"] == 1 / 2000 and math.isnan(metrics["odd"])
    assert metrics["tie"] == 2.0  # at the same step and time, the higher value, as MLflow
    store.write_metric_rows(run_id, [(run_id, "loss", 1999, 9000, 5.0, False)])
    assert store.get_run(run_id).data.metrics["loss"] == 5.0  # a later value in a later batch
    with pytest.raises(NotFound, match="Run '0+' not found"):
        store.write_metric_rows("0" * 32, [("0" * 32, "m", 0, 0, 1.0, False)])
    with pytest.raises(InvalidArgument, match="another run"):
        store.write_metric_rows(run_id, [("f" * 32, "m", 0, 0, 1.0, False)])
    with pytest.raises(InvalidArgument, match="NUL"):
        store.write_metric_rows(run_id, [(run_id, "a\x00b", 0, 0, 1.0, False)])


def test_a_tie_at_the_same_step_and_time_keeps_the_higher_value_however_it_is_written(
    store: SqlStore,
) -> None:
    # The latest value is the same whether the values came in one batch, in two, or in a
    # bulk load (which reads them back): the higher value at the same step and time.
    run_id = _run(store)
    # First: a bulk load recomputes every key's latest value from the stored history.
    store.write_metric_rows(run_id, [(run_id, "four", 3, 7, v, False) for v in (2.0, 1.0)])
    store.write_records([metric_record(run_id, "one", v, 7, 3) for v in (2.0, 1.0)])
    store.write_records([metric_record(run_id, "two", 2.0, 7, 3)])
    store.write_records([metric_record(run_id, "two", 1.0, 7, 3)])
    store.write_records([metric_record(run_id, "three", 1.0, 7, 3)])
    store.write_records([metric_record(run_id, "three", 2.0, 7, 3)])
    eid = store.get_run(run_id).info.experiment_id
    every = "metrics.one = 2 and metrics.two = 2 and metrics.three = 2 and metrics.four = 2"
    (found,), _ = store.search_runs([eid], every)  # searches read the latest values
    assert found.data.metrics == {"one": 2.0, "two": 2.0, "three": 2.0, "four": 2.0}
    store.write_records([metric_record(run_id, "one", 0.5, 8, 3)])  # later: replaces
    (found,), _ = store.search_runs([eid], "metrics.one < 1")
    assert found.data.metrics["one"] == 0.5


def test_metric_values_copied_from_an_sqlite_file_are_stored_once(
    store: SqlStore, tmp_path: Path
) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE m (run_id, key, step, timestamp, value, is_nan, x DEFAULT 0)")
        run_id = _run(store)
        rows = [(run_id, "loss", s, 1000 + s, 1 / (s + 1), 0) for s in range(2000)]
        rows += [(run_id, "odd", 0, 5, 0.0, 1), (run_id, "tie", 3, 7, 2.0, 0)]
        rows += [(run_id, "tie", 3, 7, 1.0, 0), (run_id, "a\x00b", 0, 0, 1.0, 0)]
        rows += [("f" * 32, "other", 0, 0, 1.0, 0)]  # another run's: left out
        conn.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?, 0)", rows)
    select = "SELECT * FROM source.m WHERE ? IS NOT NULL AND key NOT LIKE 'a%'"
    if store.dialect != "sqlite":
        with pytest.raises(InvalidArgument, match="from SQLite into SQLite, not postgresql"):
            store.sqlite_copier(str(source), select).__enter__()
        return
    with store.sqlite_copier(str(source), select) as copy:
        assert copy(run_id) == 2003
        assert copy(run_id) == 0  # nothing twice
        with pytest.raises(NotFound, match="Run '0+' not found"):
            copy("0" * 32)
    history = store.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1 / (s + 1)) for s in range(2000)]
    metrics = store.get_run(run_id).data.metrics
    assert metrics["loss"] == 1 / 2000 and math.isnan(metrics["odd"]) and metrics["tie"] == 2.0
    every = "SELECT * FROM source.m WHERE ? IS NOT NULL"
    with (
        store.sqlite_copier(str(source), every) as copy,
        pytest.raises(InvalidArgument, match="NUL"),
    ):
        copy(run_id)  # refused whole
    assert len(store.get_metric_history(run_id, "loss")) == 2000
    with store.engine.connect() as conn:  # the file detached, the foreign keys checked again
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert [r[1] for r in conn.exec_driver_sql("PRAGMA database_list")] == ["main"]


@pytest.mark.migrations
def test_upgrade_keeps_a_runs_values_and_clusters_them_by_run(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from ferryml.store._migrate import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'ferry.db'}"
    store = SqlStore(url).open()
    run_id = _run(store)
    store.write_records(
        [
            ParamRecord(run_id, "lr", "0.1"),
            TagRecord(run_id, "team", "ml"),
            metric_record(run_id, "acc", 1 / 3, 1, 0),
        ]
    )
    before = store.get_run(run_id)

    def clustered() -> dict[str, bool]:
        with sqlite3.connect(tmp_path / "ferry.db") as conn:
            rows = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE name IN "
                "('params', 'tags', 'latest_metrics')"
            ).fetchall()
        return {name: "WITHOUT ROWID" in sql for name, sql in rows}

    assert clustered() == {"params": True, "tags": True, "latest_metrics": True}
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.connect() as conn:  # back to the schema an older ferryml wrote
        config.attributes["connection"] = conn
        command.downgrade(config, "0015")
        conn.commit()
    store.close()
    assert clustered() == {"params": False, "tags": False, "latest_metrics": False}
    store = SqlStore(url).open()  # upgrades it
    assert clustered() == {"params": True, "tags": True, "latest_metrics": True}
    assert store.get_run(run_id) == before
    store.close()


def test_bulk_writes_leave_a_write_ahead_log_of_bounded_size(tmp_path: Path) -> None:
    from ferryml.store._dialect import WAL_LIMIT_BYTES

    store = SqlStore(f"sqlite:///{tmp_path / 'ferry.db'}").open()
    run_ids = [_run(store, f"r{i}") for i in range(20)]
    # 1,000 small transactions rewrite the same pages: some 20 MB through the log
    for step in range(50):
        for run_id in run_ids:
            rows = [(run_id, f"m{k}", step, step, float(step), False) for k in range(10)]
            store.write_metric_rows(run_id, rows)
    wal = tmp_path / "ferry.db-wal"
    assert wal.stat().st_size <= 2 * WAL_LIMIT_BYTES
    store.close()
