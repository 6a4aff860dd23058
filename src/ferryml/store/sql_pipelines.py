"""The step cache over the same SQL database as the tracking store."""

from __future__ import annotations

import time

from sqlalchemy import select

from ferryml.store import _dialect
from ferryml.store import _schema as t
from ferryml.store.entities import CachedOutput
from ferryml.store.sql import StorePart

__all__ = ["SqlStepCache"]


class SqlStepCache(StorePart):
    """Step outputs by cache key."""

    def get(self, cache_key: str) -> CachedOutput | None:
        c = t.step_cache.c
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(c.digest, c.format, c.run_id).where(c.cache_key == cache_key)
            ).first()
        return None if row is None else CachedOutput(row.digest, row.format, row.run_id)

    def put(self, cache_key: str, step: str, digest: str, fmt: str, run_id: str | None) -> None:
        row = {
            "cache_key": cache_key,
            "step": step,
            "digest": digest,
            "format": fmt,
            "run_id": run_id,
            "creation_time": int(time.time() * 1000),
        }

        def write() -> None:
            with self._store.engine.execution_options(ferry_write=True).begin() as conn:
                _dialect.upsert(conn, t.step_cache, [row], ("cache_key",))

        _dialect.retry_locked(write)
