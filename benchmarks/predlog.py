"""Prediction log benchmark: what ``PredictionLog.record`` costs the serving hot path, how
fast a flush writes, and the storage it chose (Parquet partitions in the artifact store,
indexed in the metadata store) against the alternative (one row per prediction in the
metadata store, features and output as JSON), on the same workloads.

    python benchmarks/predlog.py [--quick] [--json] [--postgres URL | --no-postgres]

Workloads: 1-row requests (the usual online call) and 100-row requests (a batch call),
each prediction with 10 features (8 floats, a string, an int). Flush figures include
gathering the recorded frames, encoding, the blob or row writes and the commit. Load reads
one deployment's window back as a typed DataFrame. Feedback looks up 1,000 logged ids.
SQLite always; PostgreSQL when reachable (default: the test server on 127.0.0.1:5432),
each run in a schema of its own, dropped at the end. Every file lives in one temp folder,
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    text,
)

from ferryml import predictions
from ferryml.config import Settings
from ferryml.serving.predlog import PredictionLog, new_prediction_id
from ferryml.store import _dialect

FULL = {"rows": 50_000, "record_calls": 200_000, "repeats": 3}
QUICK = {"rows": 10_000, "record_calls": 50_000, "repeats": 1}
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def frames(rows: int, per_request: int, seed: int = 0) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    whole = pd.DataFrame(
        {f"x{i}": rng.random(rows) for i in range(8)}
        | {"plan": rng.choice(["free", "pro", "team"], rows), "age": rng.integers(18, 90, rows)}
    )
    return [
        whole.iloc[start : start + per_request].reset_index(drop=True)
        for start in range(0, rows, per_request)
    ]


def best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


# -- record() ----------------------------------------------------------------------------


def record_cost(settings: Settings, calls: int) -> dict[str, float]:
    """Per-call cost of record() with a 1-row frame, the flusher running as in a server
    (the request written ahead to a file, then kept), and of keeping it in memory alone."""
    frame = frames(1, 1)[0]
    outputs = [0.5]
    chunk = 1000
    per_call: list[float] = []
    with PredictionLog(settings, flush_interval=1.0) as log:
        clock = time.perf_counter
        for _ in range(calls // chunk):
            ids = [new_prediction_id() for _ in range(chunk)]
            start = clock()
            for pid in ids:
                log.record("bench", "primary", "m", 1, [pid], frame, outputs, 1.0)
            per_call.append((clock() - start) / chunk)
    per_call.sort()
    # Before the write-ahead file: a log never opened only keeps the references.
    memory = PredictionLog(settings)
    start = time.perf_counter()
    for _ in range(calls // 10):
        memory.record("bench", "primary", "m", 1, ["id"], frame, outputs, 1.0)
    in_memory = (time.perf_counter() - start) / (calls // 10)
    return {
        "median_us": statistics.median(per_call) * 1e6,
        "p99_us": per_call[int(len(per_call) * 0.99) - 1] * 1e6,
        "in_memory_only_us": in_memory * 1e6,
        "new_prediction_id_us": _id_cost() * 1e6,
    }


def _id_cost() -> float:
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        new_prediction_id()
    return (time.perf_counter() - start) / n


# -- the chosen storage: Parquet partitions ----------------------------------------------


def parquet_flush(settings: Settings, batch: list[pd.DataFrame], deployment: str) -> float:
    """rows/s of one flush of ``batch`` (recorded first, outside the clock)."""
    log = PredictionLog(settings, flush_interval=3600, max_rows=10**9).open()
    try:
        for frame in batch:
            n = len(frame)
            ids = [new_prediction_id() for _ in range(n)]
            log.record(deployment, "primary", "m", 1, ids, frame, np.full(n, 0.5), 1.0)
        rows = log.pending_rows
        start = time.perf_counter()
        log.flush()
        return rows / (time.perf_counter() - start)
    finally:
        log.close()


def parquet_load(settings: Settings, deployment: str) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    frame = predictions.load(deployment, settings=settings)
    return len(frame) / (time.perf_counter() - start), frame


def parquet_feedback(settings: Settings, ids: list[str]) -> float:
    start = time.perf_counter()
    report = predictions.record_feedback([(i, 1) for i in ids], settings=settings)
    assert report.accepted == len(ids), report
    return time.perf_counter() - start


# -- the alternative: a row per prediction in the metadata store ---------------------------

_alt = MetaData()
_rows_table = Table(
    "bench_prediction_rows",
    _alt,
    Column("id", String(64), primary_key=True),
    Column("deployment", String(256), nullable=False, index=True),
    Column("time", BigInteger, nullable=False),
    Column("route", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("features", Text, nullable=False),
    Column("prediction", Text, nullable=False),
)


def rows_flush(url: str, batch: list[pd.DataFrame], deployment: str) -> float:
    """The same flush as rows: gather the frames, JSON-encode each row, insert them all."""
    engine = _dialect.make_engine(url)
    _alt.create_all(engine)
    pending = [([new_prediction_id() for _ in range(len(f))], f, time.time()) for f in batch]
    try:
        start = time.perf_counter()
        gathered = pd.concat([f for _, f, _ in pending], ignore_index=True)
        ids = [i for batch_ids, _, _ in pending for i in batch_ids]
        times = np.repeat([int(t * 1000) for _, _, t in pending], [len(f) for f in batch])
        records = gathered.to_dict("records")
        values = [
            (pid, deployment, int(ms), "primary", "m", 1, 1.0, orjson.dumps(rec).decode(), "0.5")
            for pid, ms, rec in zip(ids, times, records, strict=True)
        ]
        with engine.execution_options(ferry_write=True).begin() as conn:
            _dialect.insert_ignore_fast(conn, _rows_table, values)
        return len(values) / (time.perf_counter() - start)
    finally:
        engine.dispose()


def rows_load(url: str, deployment: str) -> float:
    engine = _dialect.make_engine(url)
    try:
        start = time.perf_counter()
        t = _rows_table.c
        with engine.connect() as conn:
            found = conn.execute(
                _rows_table.select().where(t.deployment == deployment).order_by(t.time, t.id)
            ).all()
        meta = pd.DataFrame(
            [r[:7] for r in found],
            columns=["id", "deployment", "time", "route", "model", "version", "latency_ms"],
        )
        meta["time"] = pd.to_datetime(meta["time"], unit="ms", utc=True)
        features = pd.DataFrame([orjson.loads(r.features) for r in found])
        frame = pd.concat([meta, features], axis=1)
        frame["prediction"] = [orjson.loads(r.prediction) for r in found]
        return len(frame) / (time.perf_counter() - start)
    finally:
        engine.dispose()


def rows_feedback(url: str, ids: list[str]) -> float:
    engine = _dialect.make_engine(url)
    try:
        start = time.perf_counter()
        with engine.connect() as conn:
            found = conn.execute(
                _rows_table.select()
                .with_only_columns(_rows_table.c.id)
                .where(_rows_table.c.id.in_(ids))
            ).all()
        assert len(found) == len(ids)
        return time.perf_counter() - start
    finally:
        engine.dispose()


# -- stores ----------------------------------------------------------------------------


@contextmanager
def sqlite_store(root: Path) -> Iterator[Settings]:
    yield Settings(
        home=root / "home",
        store_url=f"sqlite:///{root / 'store' / 'ferry.db'}",
        artifacts_url=(root / "artifacts").as_uri(),
    )


@contextmanager
def postgres_store(root: Path, url: str) -> Iterator[Settings]:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in url else "?"
        yield Settings(
            home=root / "home",
            store_url=f"{url}{sep}options=-csearch_path%3D{schema}",
            artifacts_url=(root / "artifacts").as_uri(),
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def reachable(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False
    finally:
        engine.dispose()


def run_backend(name: str, settings: Settings, plan: dict[str, int]) -> dict[str, Any]:
    rows, repeats = plan["rows"], plan["repeats"]
    one = frames(rows, 1)
    hundred = frames(rows, 100)
    counter = iter(range(10**6))

    def deployment() -> str:
        return f"bench-{next(counter)}"

    result: dict[str, Any] = {"backend": name}
    result["parquet_flush_1row"] = best(lambda: parquet_flush(settings, one, deployment()), repeats)
    result["parquet_flush_100row"] = best(
        lambda: parquet_flush(settings, hundred, deployment()), repeats
    )
    result["rows_flush_1row"] = best(
        lambda: rows_flush(settings.store_url, one, deployment()), repeats
    )
    result["rows_flush_100row"] = best(
        lambda: rows_flush(settings.store_url, hundred, deployment()), repeats
    )
    # Load and feedback read a window as a server logs it: one partition a second, here
    # of 1,000 rows each.
    window = deployment()
    chunks = [hundred[i : i + 10] for i in range(0, len(hundred), 10)]
    for chunk in chunks:
        parquet_flush(settings, chunk, window)
    speed, frame = parquet_load(settings, window)
    result["parquet_load"] = max(speed, best(lambda: parquet_load(settings, window)[0], repeats))
    sample = frame["id"].sample(1000, random_state=0).tolist()
    result["parquet_feedback_1000_s"] = parquet_feedback(settings, sample)
    rows_flush(settings.store_url, hundred, window)
    result["rows_load"] = best(lambda: rows_load(settings.store_url, window), repeats)
    engine = _dialect.make_engine(settings.store_url)
    with engine.connect() as conn:
        rows_ids = [
            r[0]
            for r in conn.execute(
                _rows_table.select()
                .with_only_columns(_rows_table.c.id)
                .where(_rows_table.c.deployment == window)
            )
        ]
    engine.dispose()
    result["rows_feedback_1000_s"] = rows_feedback(
        settings.store_url, list(np.random.default_rng(0).choice(rows_ids, 1000, replace=False))
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one repeat")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--postgres", default=PG_DEFAULT, help="PostgreSQL URL to measure too")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    results: dict[str, Any] = {"plan": plan}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-predlog-") as tmp:
        root = Path(tmp)
        with sqlite_store(root / "cost") as settings:
            results["record"] = record_cost(settings, plan["record_calls"])
        backends = []
        with sqlite_store(root / "sqlite") as settings:
            backends.append(run_backend("sqlite", settings, plan))
        if not args.no_postgres and reachable(args.postgres):
            with postgres_store(root / "pg", args.postgres) as settings:
                backends.append(run_backend("postgresql", settings, plan))
        results["backends"] = backends
    if args.json:
        print(json.dumps(results, indent=2))
        return
    record = results["record"]
    print(f"record(), 1-row frame, flusher running: median {record['median_us']:.2f} µs/call")
    print(
        f"  p99 of 1,000-call chunks {record['p99_us']:.2f} µs/call (the flusher's turns "
        "with the GIL)"
    )
    print(
        f"  kept in memory alone (no write-ahead file, as before it): "
        f"{record['in_memory_only_us']:.2f} µs/call"
    )
    print(f"new_prediction_id(): {record['new_prediction_id_us']:.2f} µs")
    print(f"\n{plan['rows']:,} predictions of 10 features; rows/s (higher is better)")
    header = f"{'':30}" + "".join(
        f"{b['backend'] + ' parquet':>20}{b['backend'] + ' rows':>20}" for b in backends
    )
    print(header)
    for label, key in (
        ("flush, 1-row requests", "flush_1row"),
        ("flush, 100-row requests", "flush_100row"),
        ("load the window", "load"),
    ):
        cells = "".join(
            f"{b['parquet_' + key]:>20,.0f}{b['rows_' + key]:>20,.0f}" for b in backends
        )
        print(f"{label:30}{cells}")
    cells = "".join(
        f"{b['parquet_feedback_1000_s'] * 1000:>18.1f}ms{b['rows_feedback_1000_s'] * 1000:>18.1f}ms"
        for b in backends
    )
    print(f"{'feedback, 1,000 ids':30}{cells}")
    print("  (feedback: Parquet looks the ids up and stores the labels; rows only look up)")


if __name__ == "__main__":
    main()
