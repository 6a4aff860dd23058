"""``ReferenceStore`` over the SQL metadata store: every digest a row points at."""

from __future__ import annotations

import re

from sqlalchemy import select

from ferryml.store import _schema as t
from ferryml.store.entities import BlobReferences
from ferryml.store.sql import StorePart

__all__ = ["SqlReferenceStore"]

_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")
# The tag a pipeline's step run holds its output's digest in.
_OUTPUT_TAG = "ferry.output.digest"


class SqlReferenceStore(StorePart):
    """The blobs the metadata refers to."""

    def list_blob_references(self, *, deleted_runs: bool = True) -> BlobReferences:
        r, a, g = t.runs.c, t.run_artifacts.c, t.tags.c
        d, m = t.dataset_versions.c, t.model_versions.c
        direct: set[str] = set()
        with self._store.engine.connect() as conn:
            artifacts = select(a.digest).distinct()
            outputs = select(g.value).where(g.key == _OUTPUT_TAG)
            if not deleted_runs:
                active = select(r.run_id).where(r.lifecycle_stage == "active")
                artifacts = artifacts.where(a.run_id.in_(active))
                outputs = outputs.where(g.run_id.in_(active))
            direct.update(conn.execute(artifacts).scalars())
            direct.update(conn.execute(outputs).scalars())
            for column in (
                t.step_cache.c.digest,
                t.prediction_partitions.c.digest,
                t.logged_model_files.c.digest,  # MLflow's logged models
            ):
                direct.update(conn.execute(select(column).distinct()).scalars())
            manifests, packages = set(), set()
            for row in conn.execute(
                select(d.manifest_digest, d.profile_digest).where(d.deleted_time.is_(None))
            ):
                manifests.add(row.manifest_digest)
                if row.profile_digest:
                    direct.add(row.profile_digest)
            for row in conn.execute(
                select(m.package_digest, m.profile_digest).where(m.deleted_time.is_(None))
            ):
                packages.add(row.package_digest)
                if row.profile_digest:
                    direct.add(row.profile_digest)
            # A decision's context is JSON that names blobs (its holdout set, ...) by digest.
            for context in conn.execute(select(t.decisions.c.context)).scalars():
                direct.update(_DIGEST.findall(context))
        return BlobReferences(frozenset(direct), frozenset(manifests), frozenset(packages))
