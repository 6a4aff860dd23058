"""A long metric history reduced in the database to the points a chart can show: the step
range cut into buckets, and from each bucket its first, last, lowest and highest finite
point. Only those rows leave the database (a few thousand, not 100,000: reading every
point into Python cost more than the database's work), and LTTB then picks among them.

Each bucket is read through the primary key's (run_id, key, step) order with
``ORDER BY … LIMIT 1`` subqueries, so neither SQLite nor PostgreSQL sorts the whole
series: a GROUP BY over a computed bucket sorted all 100,000 rows and cost as much as
reading them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Select, and_, cast, func, literal, select, union_all

from ferryml.store import _schema as t

__all__ = ["bucket_points", "step_range"]

_LARGEST_FLOAT = 1.7976931348623157e308


def step_range(run_id: str, key: str) -> Select[tuple[int | None, int | None, int]]:
    """The metric's first and last step, and how many points it has."""
    m = t.metrics.c
    own = and_(m.run_id == run_id, m.key == key)
    first = select(m.step).where(own).order_by(m.step).limit(1).scalar_subquery()
    last = select(m.step).where(own).order_by(m.step.desc()).limit(1).scalar_subquery()
    total = select(func.count()).select_from(t.metrics).where(own).scalar_subquery()
    return select(first.label("first"), last.label("last"), total.label("total"))


def bucket_points(
    run_id: str, key: str, first: int, width: int, buckets: int
) -> Select[tuple[int, int, float]]:
    """(step, timestamp, value) of the first, last, lowest and highest finite point of each
    of ``buckets`` step ranges ``[first + i*width, first + (i+1)*width)``, ordered by step
    and time. Every row at a chosen step comes back, so each point is a logged one."""
    m = t.metrics.alias("m")
    start = cast(literal(first), BigInteger)
    seed = select(literal(0).label("i"), start.label("s"))
    edges = seed.cte("edges", recursive=True)
    edges = edges.union_all(
        select(edges.c.i + 1, edges.c.s + cast(literal(width), BigInteger)).where(
            edges.c.i + 1 < buckets
        )
    )
    finite = and_(
        m.c.run_id == run_id,
        m.c.key == key,
        m.c.step >= edges.c.s,
        m.c.step < edges.c.s + width,
        m.c.is_nan.is_(False),
        m.c.value.between(-_LARGEST_FLOAT, _LARGEST_FLOAT),
    )
    orders = {
        "low": (m.c.value, m.c.step),
        "high": (m.c.value.desc(), m.c.step),
        "head": (m.c.step,),
        "tail": (m.c.step.desc(),),
    }
    picks = (
        select(
            *[
                select(m.c.step).where(finite).order_by(*o).limit(1).scalar_subquery().label(name)
                for name, o in orders.items()
            ]
        )
        .select_from(edges)
        .cte("picks")
    )
    chosen = union_all(*[select(picks.c[name]) for name in orders])
    r = t.metrics.c
    return (
        select(r.step, r.timestamp, r.value)
        .where(r.run_id == run_id, r.key == key, r.is_nan.is_(False), r.step.in_(chosen))
        .order_by(r.step, r.timestamp)
    )
