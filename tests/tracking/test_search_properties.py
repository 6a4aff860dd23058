"""The run filter language under hypothesis: any string gives a clear error or a correct
query; every value reaches the database as a bound parameter; SQLite and PostgreSQL find
the same runs as a plain Python reading of the same filter."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.store._search_sql import where_clause
from ferryml.store.filters import parse_filter
from ferryml.tracking.client import FerryClient

PROPERTY = settings(max_examples=40)

# Values chosen to collide: case, LIKE's wildcards and escape, quotes, numbers as text.
TEXTS = ["a", "A", "ab", "aB", "a_b", "a%b", "a\\b", "x'y", "10", "9", "1e1", "a b", "b"]
NUMBERS = [-1.0, 0.0, 0.5, 1.0, 2.5, 1e-3, float("nan")]
STATUSES = ["FINISHED", "FAILED", "KILLED", "RUNNING"]
PARENT = f"{0:032x}"


@dataclass(frozen=True)
class FakeRun:
    """What one stored run holds, as the Python reading of a filter sees it."""

    run_id: str
    attributes: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


def _runs() -> list[FakeRun]:
    runs = []
    for i in range(12):
        runs.append(
            FakeRun(
                run_id=f"{i:032x}",
                attributes={
                    "run_name": TEXTS[i % len(TEXTS)],
                    "status": STATUSES[i % 4],
                    "start_time": 1000 + 10 * i,
                    "end_time": None if i % 4 == 3 else 2000 + 7 * i,
                    "parent_run_id": None if i % 3 or i == 0 else PARENT,
                },
                metrics={
                    k: NUMBERS[(i * m) % len(NUMBERS)]
                    for m, k in ((1, "m"), (3, "n.x"))
                    if (i + m) % 5
                },  # fmt: skip
                params={
                    k: TEXTS[(i * m + 2) % len(TEXTS)]
                    for m, k in ((1, "p"), (5, "q"))
                    if (i + m) % 4
                },  # fmt: skip
                tags={
                    k: TEXTS[(i * m + 5) % len(TEXTS)]
                    for m, k in ((2, "t"), (7, "u v"))
                    if (i + m) % 3
                },  # fmt: skip
            )
        )
    return runs


RUNS = _runs()


def _populate(client: FerryClient) -> str:
    experiment = client.create_experiment("search")
    for run in RUNS:
        client.store.create_run(
            experiment,
            run_name=run.attributes["run_name"],
            start_time=run.attributes["start_time"],
            user="",
            parent_run_id=run.attributes["parent_run_id"],
            run_id=run.run_id,
        )
        client.log_batch(run.run_id, params=run.params, tags=run.tags)
        for key, value in run.metrics.items():
            client.log_metric(run.run_id, key, -5.0, timestamp=1, step=0)  # an older value
            client.log_metric(run.run_id, key, value, timestamp=2, step=1)
        if run.attributes["status"] != "RUNNING":
            client.set_terminated(run.run_id, run.attributes["status"], run.attributes["end_time"])
    client.flush()
    return experiment


@pytest.fixture(scope="module")
def stores(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    make_store: Callable[..., Any],
) -> Iterator[dict[str, tuple[FerryClient, str]]]:
    """Both backends holding RUNS, built once for the module; PostgreSQL when reachable."""
    clients: dict[str, tuple[FerryClient, str]] = {}
    contexts = []
    try:
        for kind in ("sqlite", "postgresql"):
            folder = tmp_path_factory.mktemp(kind)
            context = make_store(kind, folder, request)
            try:
                url = context.__enter__()
            except pytest.skip.Exception:
                continue
            contexts.append(context)
            client = FerryClient(
                Settings(home=folder / "home", store_url=url, artifacts_url=folder.as_uri())
            )
            clients[kind] = (client, _populate(client))
        yield clients
    finally:
        for client, _ in clients.values():
            client.close()
        for context in reversed(contexts):
            context.__exit__(None, None, None)


# -- filters as a tree: rendered to text and read by Python alone ------------------------------


@dataclass(frozen=True)
class Cmp:
    kind: str  # metric, param, tag, attribute
    key: str
    op: str
    value: Any  # float, str, tuple of str, or None

    def render(self, draw_case: Callable[[str], str]) -> str:
        prefix = {"metric": "metrics", "param": "params", "tag": "tags"}.get(self.kind)
        if prefix is None:
            ident = self.key
        elif re.fullmatch(r"[A-Za-z0-9_\-./:]+", self.key):
            ident = f"{prefix}.{self.key}"
        else:
            ident = f"{prefix}.`{self.key}`"
        op = " ".join(draw_case(word) for word in self.op.split())
        if self.value is None:
            return f"{ident} {op}"
        if isinstance(self.value, tuple):
            return f"{ident} {op} ({', '.join(_quote(v) for v in self.value)})"
        if isinstance(self.value, float):
            return f"{ident} {op} {self.value!r}"
        return f"{ident} {op} {_quote(self.value)}"


@dataclass(frozen=True)
class Node:
    op: str  # AND, OR
    items: tuple[Any, ...]

    def render(self, draw_case: Callable[[str], str]) -> str:
        return f" {draw_case(self.op)} ".join(f"({item.render(draw_case)})" for item in self.items)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


LIKE_PIECES = ["a", "A", "b", "B", "%", "_", "\\%", "\\_", "\\\\", "'", "1", " "]
PATTERNS = st.sampled_from(
    ["a_b", "a_", "_b", "a%", "%b", "%", "a\\_b", "a\\%b", "A%", "a\\\\b", "x'y", "1_1"]
) | st.lists(st.sampled_from(LIKE_PIECES), max_size=4).map("".join)
STRINGS = st.sampled_from(TEXTS) | st.text("aAb_%'\\1 ", max_size=3)
STRING_OPS = ["=", "!=", "LIKE", "ILIKE", "NOT LIKE", "IN", "NOT IN"]


@st.composite
def comparisons(draw: st.DrawFn) -> Cmp:
    kind = draw(st.sampled_from(["metric", "param", "tag", "attribute"]))
    if kind == "metric":
        key = draw(st.sampled_from(["m", "n.x", "absent"]))
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL"]))
        value = None if "NULL" in op else draw(st.sampled_from(NUMBERS[:-1]))
        return Cmp(kind, key, op, value)
    if kind in ("param", "tag"):
        key = draw(st.sampled_from(["p", "q", "absent"] if kind == "param" else ["t", "u v"]))
        return draw(_string_comparison(kind, key, STRING_OPS + ["IS NULL", "IS NOT NULL"]))
    key = draw(st.sampled_from(["run_name", "status", "start_time", "end_time", "parent_run_id"]))
    if key == "run_name":
        return draw(_string_comparison(kind, key, STRING_OPS))
    if key == "status":
        op = draw(st.sampled_from(["=", "!=", "IN", "NOT IN"]))
        statuses = st.sampled_from(STATUSES + ["finished"])
        if "IN" in op:
            return Cmp(kind, key, op, tuple(draw(st.lists(statuses, min_size=1, max_size=3))))
        return Cmp(kind, key, op, draw(statuses))
    if key == "parent_run_id":
        op = draw(st.sampled_from(["=", "!=", "IS NULL", "IS NOT NULL"]))
        return Cmp(kind, key, op, None if "NULL" in op else draw(st.sampled_from([PARENT, "x"])))
    ops = ["=", "!=", "<", "<=", ">", ">="] + (
        ["IS NULL", "IS NOT NULL"] if key == "end_time" else []
    )
    op = draw(st.sampled_from(ops))
    return Cmp(kind, key, op, None if "NULL" in op else float(draw(st.integers(990, 2090))))


def _string_comparison(kind: str, key: str, ops: list[str]) -> st.SearchStrategy[Cmp]:
    @st.composite
    def build(draw: st.DrawFn) -> Cmp:
        op = draw(st.sampled_from(ops))
        if "NULL" in op:
            return Cmp(kind, key, op, None)
        if "IN" in op.split():
            return Cmp(kind, key, op, tuple(draw(st.lists(STRINGS, min_size=1, max_size=3))))
        return Cmp(kind, key, op, draw(PATTERNS if "LIKE" in op else STRINGS))

    return build()


FILTERS = st.recursive(
    comparisons(),
    lambda inner: st.builds(
        Node, st.sampled_from(["AND", "OR"]), st.lists(inner, min_size=2, max_size=3).map(tuple)
    ),
    max_leaves=6,
)


def _like(pattern: str, text: str, *, fold: bool) -> bool:
    regex, chars = [], iter(pattern)
    for char in chars:
        if char == "\\":
            regex.append(re.escape(next(chars, "\\")))
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if fold else 0)
    return re.fullmatch("".join(regex), text, flags) is not None


def _holds(cmp: Cmp, run: FakeRun) -> bool:
    if cmp.kind == "attribute":
        actual = run.attributes[cmp.key]
        if cmp.op == "IS NULL":
            return actual is None
        if cmp.op == "IS NOT NULL":
            return actual is not None
        if actual is None:  # SQL's NULL satisfies no comparison
            return False
    else:
        values = {"metric": run.metrics, "param": run.params, "tag": run.tags}[cmp.kind]
        if cmp.op in ("IS NULL", "IS NOT NULL"):
            return (cmp.key in values) == (cmp.op == "IS NOT NULL")
        if cmp.key not in values:
            return False
        actual = values[cmp.key]
        if isinstance(actual, float) and math.isnan(actual):
            return False
    value = cmp.value
    if cmp.key == "status":
        value = tuple(v.upper() for v in value) if isinstance(value, tuple) else value.upper()
    match cmp.op:
        case "=":
            return bool(actual == value)
        case "!=":
            return bool(actual != value)
        case "<":
            return bool(actual < value)
        case "<=":
            return bool(actual <= value)
        case ">":
            return bool(actual > value)
        case ">=":
            return bool(actual >= value)
        case "LIKE":
            return _like(value, actual, fold=False)
        case "ILIKE":
            return _like(value, actual, fold=True)
        case "NOT LIKE":
            return not _like(value, actual, fold=False)
        case "IN":
            return actual in value
        case "NOT IN":
            return actual not in value
    raise AssertionError(cmp.op)


def _matches(expr: Cmp | Node, run: FakeRun) -> bool:
    if isinstance(expr, Cmp):
        return _holds(expr, run)
    results = [_matches(item, run) for item in expr.items]
    return all(results) if expr.op == "AND" else any(results)


def _search(client: FerryClient, experiment: str, text: str) -> list[str]:
    return [run.run_id for run in client.search_runs([experiment], text).runs]


# -- the properties ---------------------------------------------------------------------------


ORDER_KEYS = st.sampled_from(
    ["metrics.m", "metrics.`n.x`", "params.p", "params.q", "tags.t", "tags.`u v`",
     "run_name", "status", "end_time", "start_time", "metrics.absent"]
)  # fmt: skip
ORDERS = st.lists(
    st.tuples(ORDER_KEYS, st.sampled_from(["", " ASC", " desc"])).map("".join), max_size=3
)


@pytest.mark.postgres
@PROPERTY
@given(expr=FILTERS, upper=st.booleans(), order=ORDERS)
@example(expr=Cmp("attribute", "run_name", "LIKE", "a_b"), upper=True, order=["params.q"])
@example(expr=Cmp("tag", "t", "ILIKE", "a\\_%"), upper=False, order=["tags.t DESC"])
@example(
    expr=Node("OR", (Cmp("metric", "m", "!=", 0.0), Cmp("param", "absent", "IS NULL", None))),
    upper=True,
    order=["metrics.m", "end_time desc"],
)
def test_both_stores_find_the_runs_python_finds_in_one_order(
    stores: dict[str, tuple[FerryClient, str]], expr: Cmp | Node, upper: bool, order: list[str]
) -> None:
    text = expr.render(str.upper if upper else str.lower)
    expected = sorted(run.run_id for run in RUNS if _matches(expr, run))
    found = {
        kind: [run.run_id for run in client.search_runs([experiment], text, order).runs]
        for kind, (client, experiment) in stores.items()
    }
    for kind, run_ids in found.items():
        assert sorted(run_ids) == expected, (kind, text)
    assert found["sqlite"] == found.get("postgresql", found["sqlite"]), (text, order)


def _swap_values(expr: Cmp | Node, other: Callable[[Any], Any]) -> Cmp | Node:
    if isinstance(expr, Node):
        return Node(expr.op, tuple(_swap_values(item, other) for item in expr.items))
    if expr.value is None or expr.key in ("status",):
        return expr
    if isinstance(expr.value, tuple):
        return Cmp(expr.kind, expr.key, expr.op, tuple(other(v) for v in expr.value))
    return Cmp(expr.kind, expr.key, expr.op, other(expr.value))


def _sql(text: str, dialect: Any) -> str:
    expr = parse_filter(text)
    assert expr is not None
    return str(where_clause(expr, dialect.name).compile(dialect=dialect))


@PROPERTY
@given(expr=FILTERS)
def test_values_reach_the_database_only_as_bound_parameters(expr: Cmp | Node) -> None:
    """The SQL text is the same whatever the values: none of them is spliced into it."""
    spliced = _swap_values(
        expr,
        lambda v: v + 1.0 if isinstance(v, float) else "'); DROP TABLE runs; --" + v,
    )
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        original, changed = (
            _sql(expr.render(str.upper), dialect),
            _sql(spliced.render(str.upper), dialect),
        )
        assert original == changed
        assert "DROP TABLE" not in changed


# Pieces of the grammar, so that random text gets past the first token often.
GRAMMAR = [
    "metrics.m", "params.p", "tags.t", "attributes.", "run_name", "status", "end_time",
    "params.`a b`", "metrics.", "tags.\"x\"", " = ", " != ", " <> ", " == ", " < ", ">=",
    " LIKE ", " ilike ", " NOT ", " IN ", " IS ", " NULL", " and ", " OR ", "(", ")", ",",
    "'a'", "'", "\"", "`", "1", "-2.5e3", "1e999", "nan", "'RUNNING'", "\\", "%", ";", "--",
]  # fmt: skip
ANY_FILTER = st.text(max_size=40) | st.lists(st.sampled_from(GRAMMAR), max_size=10).map("".join)


@PROPERTY
@given(text=ANY_FILTER)
def test_any_string_is_a_one_line_error_or_a_search(
    stores: dict[str, tuple[FerryClient, str]], text: str
) -> None:
    client, experiment = stores["sqlite"]
    try:
        found = _search(client, experiment, text)
    except InvalidArgument as e:
        message = str(e)
        assert message.startswith("Invalid filter") and "\n" not in message.replace(text, ""), (
            message
        )
        assert "expected" in message  # says what would have been right
        return
    assert set(found) <= {run.run_id for run in RUNS}


@PROPERTY
@given(items=st.lists(ANY_FILTER, max_size=3))
def test_any_order_by_is_a_one_line_error_or_a_search(
    stores: dict[str, tuple[FerryClient, str]], items: list[str]
) -> None:
    client, experiment = stores["sqlite"]
    try:
        found = client.search_runs([experiment], "", order_by=items).runs
    except InvalidArgument as e:
        assert str(e).startswith("Invalid order_by item"), str(e)
        return
    assert sorted(run.run_id for run in found) == sorted(run.run_id for run in RUNS)
