import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert, select

from ferryml.errors import InvalidArgument
from ferryml.store import _schema as schema
from ferryml.store._search_sql import apply_order, finite_lead_page, ordered_page, where_clause
from ferryml.store.filters import parse_filter, parse_order_by

# run_id: (experiment, name, status, start, end, user, parent)
RUNS: dict[str, tuple[int, str, str, int, int | None, str, str | None]] = {
    "r1": (1, "alpha", "FINISHED", 100, 200, "alice", None),
    "r2": (1, "beta", "FINISHED", 200, 300, "bob", "r1"),
    "r3": (1, "Gamma", "RUNNING", 300, None, "alice", None),
    "r4": (1, "delta_1", "FAILED", 400, 450, "carol", "r1"),
    "r5": (2, "deltax1", "KILLED", 400, 420, "dave", None),
}
PARAMS = {
    "r1": {"model": "RandomForest", "lr": "0.1", "trees": "50", "depth": "10"},
    "r2": {"model": "randomforest", "lr": "0.01", "trees": "100", "depth": "9"},
    "r3": {"model": "svm", "trees": "1e1", "depth": "None"},
    "r4": {"trees": "-2.5"},
    "r5": {"model": "svm", "lr": "1", "trees": "10"},
}
# Latest values; None is NaN.
LATEST_METRICS: dict[str, dict[str, float | None]] = {
    "r1": {"acc": 0.9, "loss": 0.2},
    "r2": {"acc": 0.8, "loss": None},
    "r3": {"acc": None},
    "r4": {"loss": 0.5},
    "r5": {"acc": 0.8},
}
TAGS = {
    "r1": {"team": "Vision", "note key": "a*b?[c]"},
    "r2": {"team": "vision", "note key": "axb?[c]"},
    "r4": {"team": "nlp"},
}


def populate(engine: Engine) -> None:
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.experiments),
            [
                {"experiment_id": i, "name": f"e{i}", "creation_time": 0, "last_update_time": 0}
                for i in (1, 2)
            ],
        )
        conn.execute(
            insert(schema.runs),
            [
                {"run_id": run_id, "experiment_id": e, "run_name": name, "status": status,
                 "start_time": start, "end_time": end, "user_id": user, "parent_run_id": parent}
                for run_id, (e, name, status, start, end, user, parent) in RUNS.items()
            ],
        )  # fmt: skip
        conn.execute(
            insert(schema.params),
            [
                {"run_id": r, "key": k, "value": v}
                for r, kv in PARAMS.items()
                for k, v in kv.items()
            ],
        )
        conn.execute(
            insert(schema.tags),
            [{"run_id": r, "key": k, "value": v} for r, kv in TAGS.items() for k, v in kv.items()],
        )
        # NaN is stored as 0 with is_nan set, as the store does.
        conn.execute(
            insert(schema.latest_metrics),
            [
                {
                    "run_id": r,
                    "key": k,
                    "step": 5,
                    "timestamp": 5,
                    "value": v or 0.0,
                    "is_nan": v is None,
                }
                for r, kv in LATEST_METRICS.items()
                for k, v in kv.items()
            ],
        )
        # An older value of r1's acc that search must not see.
        conn.execute(
            insert(schema.metrics),
            [
                {
                    "run_id": "r1",
                    "key": "acc",
                    "step": 0,
                    "timestamp": 0,
                    "value": 0.1,
                    "is_nan": False,
                }
            ],
        )


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('search') / 'ferry.db'}")
    try:
        populate(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(pg_database: str) -> Iterator[Engine]:
    """A schema of its own in the session's database (skipped, like the rest of the suite,
    where PostgreSQL is not reachable)."""
    schema = f"search_{secrets.token_hex(6)}"
    admin = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = create_engine(f"{pg_database}?options=-csearch_path%3D{schema}")
    try:
        populate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    fixture = "sqlite_engine" if request.param == "sqlite" else "postgres_engine"
    result: Engine = request.getfixturevalue(fixture)
    return result


def search(engine: Engine, filter_string: str = "", order_by: Sequence[str] = ()) -> list[str]:
    dialect = engine.dialect.name
    stmt = select(schema.runs.c.run_id)
    expr = parse_filter(filter_string)
    if expr is not None:
        stmt = stmt.where(where_clause(expr, dialect))
    stmt = apply_order(stmt, parse_order_by(order_by), dialect)
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def found(engine: Engine, filter_string: str) -> set[str]:
    return set(search(engine, filter_string))


# --- filters ---------------------------------------------------------------------------


def test_no_filter_returns_every_run_newest_first_then_by_run_id(engine: Engine) -> None:
    assert search(engine) == ["r4", "r5", "r3", "r2", "r1"]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("metrics.acc > 0.85", {"r1"}),
        ("metrics.acc >= 0.8", {"r1", "r2", "r5"}),
        ("metrics.acc < 0.85", {"r2", "r5"}),
        ("metrics.acc <= 0.8", {"r2", "r5"}),
        ("metrics.acc = 0.8", {"r2", "r5"}),
        ("metrics.acc == 0.9", {"r1"}),
    ],
)
def test_metric_comparisons_use_the_latest_value(
    engine: Engine, filter_string: str, expected: set[str]
) -> None:
    assert found(engine, filter_string) == expected


def test_older_metric_values_are_ignored(engine: Engine) -> None:
    assert found(engine, "metrics.acc < 0.5") == set()


@pytest.mark.parametrize("comparison", ["= 0", "!= 1", "< 0.5", "<= 0", "> -1", ">= 0"])
def test_nan_metrics_satisfy_no_numeric_comparison(engine: Engine, comparison: str) -> None:
    assert "r3" not in found(engine, f"metrics.acc {comparison}")
    assert "r2" not in found(engine, f"metrics.loss {comparison}")


def test_metric_not_equal_excludes_nan_and_runs_without_the_metric(engine: Engine) -> None:
    assert found(engine, "metrics.acc != 0.9") == {"r2", "r5"}


def test_metric_is_null_matches_runs_without_the_metric(engine: Engine) -> None:
    assert found(engine, "metrics.acc IS NULL") == {"r4"}
    assert found(engine, "metrics.acc IS NOT NULL") == {"r1", "r2", "r3", "r5"}


def test_param_equality_and_inequality_skip_runs_without_the_param(engine: Engine) -> None:
    assert found(engine, "params.model = 'svm'") == {"r3", "r5"}
    assert found(engine, "params.lr != '0.1'") == {"r2", "r5"}


def test_like_is_case_sensitive(engine: Engine) -> None:
    assert found(engine, "params.model LIKE 'Random%'") == {"r1"}
    assert found(engine, "params.model LIKE 'random%'") == {"r2"}
    assert found(engine, "run_name LIKE 'g%'") == set()


def test_ilike_is_case_insensitive(engine: Engine) -> None:
    assert found(engine, "params.model ILIKE 'random%'") == {"r1", "r2"}
    assert found(engine, "tags.team ILIKE 'VISION'") == {"r1", "r2"}
    assert found(engine, "run_name ILIKE 'g%'") == {"r3"}


def test_like_underscore_matches_one_character_and_backslash_escapes_it(engine: Engine) -> None:
    assert found(engine, "run_name LIKE 'delta_1'") == {"r4", "r5"}
    assert found(engine, "run_name LIKE 'delta\\_1'") == {"r4"}
    assert found(engine, "run_name ILIKE 'DELTA\\_%'") == {"r4"}


def test_like_treats_glob_characters_literally(engine: Engine) -> None:
    assert found(engine, "tags.`note key` LIKE 'a*b?[c]'") == {"r1"}
    assert found(engine, "tags.`note key` LIKE '%?[c]'") == {"r1", "r2"}
    assert found(engine, "tags.`note key` LIKE 'a*b%'") == {"r1"}


def test_not_like_skips_runs_without_the_key(engine: Engine) -> None:
    assert found(engine, "params.model NOT LIKE 'Random%'") == {"r2", "r3", "r5"}
    assert found(engine, "tags.team NOT LIKE 'v%'") == {"r1", "r4"}


def test_in_and_not_in_on_params(engine: Engine) -> None:
    assert found(engine, "params.lr IN ('0.1', '1')") == {"r1", "r5"}
    assert found(engine, "params.lr NOT IN ('0.1')") == {"r2", "r5"}


def test_tag_is_null_matches_runs_without_the_tag(engine: Engine) -> None:
    assert found(engine, "tags.team IS NULL") == {"r3", "r5"}
    assert found(engine, "tags.team IS NOT NULL") == {"r1", "r2", "r4"}


def test_status_attribute(engine: Engine) -> None:
    assert found(engine, "status = 'finished'") == {"r1", "r2"}
    assert found(engine, "attributes.status IN ('RUNNING', 'FAILED')") == {"r3", "r4"}
    assert found(engine, "status != 'FINISHED'") == {"r3", "r4", "r5"}


def test_experiment_id_compares_as_an_integer(engine: Engine) -> None:
    assert found(engine, "experiment_id = '2'") == {"r5"}
    assert found(engine, "experiment_id IN ('1')") == {"r1", "r2", "r3", "r4"}
    assert found(engine, "experiment_id != 1") == {"r5"}


def test_time_attributes_compare_numerically(engine: Engine) -> None:
    assert found(engine, "start_time >= 200 and start_time < 400") == {"r2", "r3"}
    assert found(engine, "end_time > 400") == {"r4", "r5"}
    assert found(engine, "end_time IS NULL") == {"r3"}


def test_user_and_run_id_attributes(engine: Engine) -> None:
    assert found(engine, "user = 'alice'") == {"r1", "r3"}
    assert found(engine, "attributes.user_id != 'alice'") == {"r2", "r4", "r5"}
    assert found(engine, "run_id IN ('r1', 'r5')") == {"r1", "r5"}


def test_parent_run_id_inequality_skips_runs_without_a_parent(engine: Engine) -> None:
    assert found(engine, "parent_run_id = 'r1'") == {"r2", "r4"}
    assert found(engine, "parent_run_id != 'r2'") == {"r2", "r4"}
    assert found(engine, "parent_run_id IS NULL") == {"r1", "r3", "r5"}


def test_and_binds_tighter_than_or(engine: Engine) -> None:
    text = "metrics.acc > 0.85 or params.model = 'svm' and tags.team IS NULL"
    assert found(engine, text) == {"r1", "r3", "r5"}


def test_parentheses_group_before_and(engine: Engine) -> None:
    text = "(metrics.acc > 0.85 or params.model = 'svm') and tags.team IS NULL"
    assert found(engine, text) == {"r3", "r5"}


# --- ordering --------------------------------------------------------------------------


def test_metric_ascending_puts_nan_then_missing_last(engine: Engine) -> None:
    assert search(engine, order_by=["metrics.acc"]) == ["r5", "r2", "r1", "r3", "r4"]


def test_metric_descending_also_puts_nan_then_missing_last(engine: Engine) -> None:
    assert search(engine, order_by=["metrics.acc DESC"]) == ["r1", "r5", "r2", "r3", "r4"]


def test_param_ordering_puts_missing_last_in_both_directions(engine: Engine) -> None:
    assert search(engine, order_by=["params.lr ASC"]) == ["r2", "r1", "r5", "r4", "r3"]
    assert search(engine, order_by=["params.lr DESC"]) == ["r5", "r1", "r2", "r4", "r3"]


def test_params_that_are_numbers_order_as_numbers(engine: Engine) -> None:
    # as text: "-2.5" < "10" < "100" < "1e1" < "50"; equal numbers (10, 1e1) then by text
    assert search(engine, order_by=["params.trees"]) == ["r4", "r5", "r3", "r1", "r2"]
    assert search(engine, order_by=["params.trees DESC"]) == ["r2", "r1", "r3", "r5", "r4"]


def test_params_that_are_not_all_numbers_put_the_numbers_first(engine: Engine) -> None:
    assert search(engine, order_by=["params.depth"]) == ["r2", "r1", "r3", "r4", "r5"]
    assert search(engine, order_by=["params.depth DESC"]) == ["r1", "r2", "r3", "r4", "r5"]


def test_strings_order_by_code_point(engine: Engine) -> None:
    assert search(engine, order_by=["params.model"]) == ["r1", "r2", "r5", "r3", "r4"]
    assert search(engine, order_by=["run_name"]) == ["r3", "r1", "r2", "r4", "r5"]


def test_tag_descending_with_ties_broken_by_start_time_then_run_id(engine: Engine) -> None:
    assert search(engine, order_by=["tags.team DESC"]) == ["r2", "r4", "r1", "r5", "r3"]


def test_nullable_attribute_orders_nulls_last_in_both_directions(engine: Engine) -> None:
    assert search(engine, order_by=["end_time"]) == ["r1", "r2", "r5", "r4", "r3"]
    assert search(engine, order_by=["attributes.end_time DESC"]) == ["r4", "r5", "r2", "r1", "r3"]


def test_several_order_keys_apply_in_turn(engine: Engine) -> None:
    assert search(engine, order_by=["user DESC", "metrics.loss"]) == ["r5", "r4", "r2", "r1", "r3"]
    assert search(engine, order_by=["status", "start_time ASC"]) == ["r4", "r1", "r2", "r5", "r3"]


def test_the_same_key_may_be_ordered_and_filtered(engine: Engine) -> None:
    assert search(engine, "metrics.acc >= 0.8", ["metrics.acc", "metrics.acc DESC"]) == [
        "r5",
        "r2",
        "r1",
    ]


@pytest.mark.parametrize(
    "order_by", [[], ["metrics.loss"], ["params.trees DESC"], ["user DESC", "metrics.acc"]]
)
def test_pages_with_places_follow_the_whole_order(engine: Engine, order_by: list[str]) -> None:
    keys = parse_order_by(order_by)
    pages = []
    with engine.connect() as conn:
        for offset in (0, 2, 4):
            stmt = ordered_page(
                select(schema.runs.c.run_id), keys, engine.dialect.name, limit=2, offset=offset
            )
            pages += list(conn.execute(stmt))
    assert [row.run_id for row in pages] == search(engine, order_by=order_by)
    assert [row.pos for row in pages] == [1, 2, 3, 4, 5]


def test_a_key_named_again_changes_nothing(engine: Engine) -> None:
    # r4 and r5 started together: the tie goes by run_id, not by the second start_time.
    assert search(engine, order_by=["start_time ASC", "attributes.start_time DESC"]) == [
        "r1", "r2", "r3", "r4", "r5"
    ]  # fmt: skip
    assert search(engine, order_by=["status", "status DESC", "start_time ASC"]) == search(
        engine, order_by=["status", "start_time ASC"]
    )


# --- plans and errors ------------------------------------------------------------------


def test_sqlite_plan_reads_the_newest_runs_off_the_index(sqlite_engine: Engine) -> None:
    """The runs page's order (newest first, named twice) with a filter: the database walks
    the (experiment_id, start_time) index and sorts only ties, so a page of a large
    experiment does not sort every run."""
    expr = parse_filter("metrics.acc > 0.5")
    assert expr is not None
    stmt = select(schema.runs.c.run_id).where(
        schema.runs.c.experiment_id == 1, where_clause(expr, "sqlite")
    )
    order = parse_order_by(["attributes.start_time DESC", "attributes.start_time DESC"])
    stmt = apply_order(stmt, order, "sqlite").limit(100)
    compiled = str(stmt.compile(sqlite_engine, compile_kwargs={"literal_binds": True}))
    with sqlite_engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled)]
    assert "SEARCH runs USING INDEX ix_runs_experiment_start (experiment_id=?)" in plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan


def test_sqlite_plan_reads_a_metric_order_off_the_key_value_index(sqlite_engine: Engine) -> None:
    stmt = select(schema.runs.c.run_id).where(schema.runs.c.experiment_id == 1)
    keys = parse_order_by(["metrics.acc DESC", "params.lr"])
    page = finite_lead_page(stmt, keys, "sqlite", limit=100, offset=0)
    assert page is not None
    compiled = str(page.compile(sqlite_engine, compile_kwargs={"literal_binds": True}))
    with sqlite_engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled)]
    assert "SEARCH lead USING INDEX ix_latest_metrics_key_value (key=?)" in plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan
    assert (
        finite_lead_page(stmt, parse_order_by(["params.lr"]), "sqlite", limit=1, offset=0) is None
    )


def test_sqlite_plan_uses_indexes_for_filters_and_order(sqlite_engine: Engine) -> None:
    expr = parse_filter("metrics.acc > 0.5 and params.model = 'svm' and tags.team != 'x'")
    assert expr is not None
    stmt = select(schema.runs.c.run_id).where(where_clause(expr, "sqlite"))
    stmt = apply_order(stmt, parse_order_by(["metrics.loss DESC", "params.lr"]), "sqlite")
    compiled = str(stmt.compile(sqlite_engine, compile_kwargs={"literal_binds": True}))
    with sqlite_engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled)]
    # Three EXISTS and two joins, each a primary-key lookup per run, none a table scan.
    lookups = [
        step for step in plan if step.startswith(("SEARCH", "SCAN")) and " runs " not in step
    ]
    assert len(lookups) == 5
    assert all(step.startswith("SEARCH") and "(run_id=? AND key=?)" in step for step in lookups)


def test_unknown_dialect_is_rejected() -> None:
    expr: Any = parse_filter("metrics.a > 1")
    message = "Run search does not support the SQL dialect 'mysql'; use one of sqlite, postgresql."
    with pytest.raises(InvalidArgument, match=message):
        where_clause(expr, "mysql")
    with pytest.raises(InvalidArgument, match=message):
        apply_order(select(schema.runs.c.run_id), [], "mysql")
