"""Compaction of the prediction log: a server writes one small Parquet partition per flush
(every second, per deployment and process); compaction merges a deployment's small
partitions of one UTC day into partitions of up to ``target_rows`` rows, so reading a day
after weeks of serving opens a few blobs, not tens of thousands.

Safe beside servers, readers and other compactions: the merged blob is written whole
(temporary file, rename) before the index changes, and the index swaps the old
partitions for the new one in one transaction, which fails, changing nothing, if another
compaction took one of them. A reader lists either the old partitions or the new one,
never both, and the old blobs stay in the artifact store until ``ferry gc`` reclaims them
after its grace period, so a reader that listed them before the swap still reads them. A
crash before the swap leaves an unindexed blob (gc removes it) and the log unchanged.

``PredictionLog`` compacts what its process wrote in the background; ``ferry predictions
compact`` does it for every deployment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.serving._partitions import parquet_bytes, read_partition_table
from ferryml.store.factory import open_artifact_store, open_prediction_store
from ferryml.store.loop import PredictionPartition, PredictionStore

__all__ = ["TARGET_ROWS", "CompactionReport", "compact"]

log = logging.getLogger(__name__)

TARGET_ROWS = 500_000  # rows of a compacted partition: ~10-50 MB of Parquet
_DAY_MS = 86_400_000
_JSON_KEY = b"ferryml.prediction"


@dataclass(frozen=True)
class CompactionReport:
    """What a compaction did: partitions merged away, partitions written in their place,
    the rows they hold, and groups skipped because another compaction took them first."""

    merged: int
    written: int
    rows: int
    lost_races: int
    seconds: float


def compact(
    settings: Settings | None = None,
    deployment: str | None = None,
    *,
    target_rows: int = TARGET_ROWS,
    min_age: float = 0.0,
) -> CompactionReport:
    """Merge the small partitions of ``deployment`` (default: every deployment), day by
    day, into partitions of up to ``target_rows`` rows.

    Args:
        settings: the stores (default: ``Settings.resolve()``).
        deployment: the deployment whose log to compact; default all.
        target_rows: rows a compacted partition holds at most; partitions of at least half
            as many are left as they are.
        min_age: seconds a partition must have existed to be merged (a server compacting in
            the background leaves the last minutes alone).

    Raises:
        InvalidArgument: ``target_rows`` or ``min_age`` is out of range.
        NotFound: ``deployment`` never logged a prediction.
        StoreUnavailable: a store cannot be reached.
    """
    if isinstance(target_rows, bool) or not isinstance(target_rows, int) or target_rows < 2:
        raise InvalidArgument(f"target_rows must be a whole number >= 2, got {target_rows!r}.")
    if not isinstance(min_age, int | float) or min_age < 0:
        raise InvalidArgument(f"min_age must be seconds >= 0, got {min_age!r}.")
    resolved = settings or Settings.resolve()
    store = open_prediction_store(resolved)
    blobs: Any = None
    try:
        blobs = open_artifact_store(resolved)
        known = store.list_deployments()
        if deployment is not None and deployment not in known:
            raise NotFound(
                f"No predictions logged for deployment {deployment!r}; deployments with "
                f"predictions: {', '.join(map(repr, known)) or 'none'}."
            )
        return compact_stores(
            store,
            blobs,
            known if deployment is None else [deployment],
            target_rows=target_rows,
            min_age=min_age,
        )
    finally:
        store.close()
        if hasattr(blobs, "close"):  # a team server's: its connections
            blobs.close()


def compact_stores(
    store: PredictionStore,
    blobs: Any,
    deployments: Iterable[str],
    *,
    target_rows: int = TARGET_ROWS,
    min_age: float = 0.0,
) -> CompactionReport:
    """``compact`` on opened stores (what a prediction log's flusher calls)."""
    start = time.perf_counter()
    merged = written = rows = lost = 0
    newest = int((time.time() - min_age) * 1000)
    for deployment in deployments:
        small = [
            p
            for p in store.list_partitions(deployment)
            if p.rows < target_rows // 2 and (p.creation_time or 0) <= newest
        ]
        for group in _groups(small, target_rows):
            done = _merge(store, blobs, deployment, group, target_rows)
            for old, new in done:
                if new is None:
                    lost += 1
                    continue
                merged += len(old)
                written += 1
                rows += new.rows
    return CompactionReport(merged, written, rows, lost, time.perf_counter() - start)


def _groups(
    partitions: list[PredictionPartition], target_rows: int
) -> Iterator[list[PredictionPartition]]:
    """Runs of partitions of one UTC day (by their first row), oldest first, of up to
    ``target_rows`` rows; a run of one partition is left alone."""
    group: list[PredictionPartition] = []
    rows = 0
    for p in partitions:  # oldest first
        same_day = group and group[0].min_time // _DAY_MS == p.min_time // _DAY_MS
        if group and (not same_day or rows + p.rows > target_rows):
            if len(group) > 1:
                yield group
            group, rows = [], 0
        group.append(p)
        rows += p.rows
    if len(group) > 1:
        yield group


def _merge(
    store: PredictionStore,
    blobs: Any,
    deployment: str,
    group: list[PredictionPartition],
    target_rows: int,
) -> list[tuple[list[PredictionPartition], PredictionPartition | None]]:
    """Merge ``group`` into as few partitions as their tables allow (a feature typed
    differently, or predictions stored as JSON text beside typed ones, starts a new one);
    each merged run and its new partition, None where another compaction won."""
    done: list[tuple[list[PredictionPartition], PredictionPartition | None]] = []
    run: list[PredictionPartition] = []
    tables: list[pa.Table] = []
    schema: pa.Schema | None = None
    for p in group:
        table = read_partition_table(blobs.get_bytes(p.digest))
        unified = _unified(schema, table.schema)
        if unified is None:
            done.extend(_swap(store, blobs, deployment, run, tables))
            run, tables, unified = [], [], table.schema
        run.append(p)
        tables.append(table)
        schema = unified
    done.extend(_swap(store, blobs, deployment, run, tables))
    return done


def _unified(schema: pa.Schema | None, other: pa.Schema) -> pa.Schema | None:
    """The schema of both tables together; None if they do not combine."""
    if schema is None:
        return other
    if (schema.metadata or {}).get(_JSON_KEY) != (other.metadata or {}).get(_JSON_KEY):
        return None
    try:
        return pa.unify_schemas([schema, other], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _swap(
    store: PredictionStore,
    blobs: Any,
    deployment: str,
    run: list[PredictionPartition],
    tables: list[pa.Table],
) -> list[tuple[list[PredictionPartition], PredictionPartition | None]]:
    if len(run) < 2:
        return []
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return []  # types that unify but do not cast: left as they are
    metadata = tables[0].schema.metadata
    if metadata:
        table = table.replace_schema_metadata(metadata)
    blob = blobs.put_bytes(parquet_bytes(table))
    new = PredictionPartition(
        digest=blob.digest,
        deployment=deployment,
        rows=sum(p.rows for p in run),
        min_time=min(p.min_time for p in run),
        max_time=max(p.max_time for p in run),
        min_id=min(p.min_id for p in run),
        max_id=max(p.max_id for p in run),
    )
    if store.replace_partitions([p.digest for p in run], [new]):
        return [(run, new)]
    log.info("Another compaction merged partitions of %r first; skipping them", deployment)
    return [(run, None)]
