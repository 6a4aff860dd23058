"""``ferry gc``: remove deleted runs and experiments for good, and reclaim the artifact
blobs that nothing refers to any more, while other processes keep writing.

A blob is deleted only if it was written or reused before the grace period began, no row
of the metadata store and no journal line waiting to be applied refers to it at the end
of the scan, and no writer reused it while the scan ran (see ``ArtifactStore``). A blob
being written and not yet recorded is therefore safe as long as recording it takes less
than the grace period.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.store.artifacts import ArtifactStore
from ferryml.store.base import TrackingStore
from ferryml.store.entities import ViewType

__all__ = ["DEFAULT_GRACE", "GcReport", "collect_garbage", "parse_grace"]

DEFAULT_GRACE = 24 * 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class GcReport:
    """What one pass removed (or, with ``dry_run``, would remove)."""

    runs: int  # deleted runs removed for good (besides those of removed experiments)
    experiments: int  # deleted experiments removed for good, with their runs
    blobs: int  # unreferenced blobs deleted
    bytes: int  # their total size
    kept: int  # blobs old enough to go but still referenced
    grace: float  # seconds: younger blobs were not considered
    dry_run: bool


def parse_grace(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``6h``, ``1d`` or a plain number of seconds.

    Raises InvalidArgument.
    """
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text.strip().lower())
    if found is None:
        raise InvalidArgument(
            f"Grace period {text!r} is not a duration; write seconds or a number with s, m, "
            "h or d, e.g. 30m, 6h, 1d."
        )
    return float(found[1]) * _UNITS[found[2] or "s"]


def collect_garbage(
    settings: Settings, *, grace: float = DEFAULT_GRACE, dry_run: bool = False
) -> GcReport:
    """Remove deleted runs and experiments for good, then delete the blobs older than
    ``grace`` seconds that nothing refers to.

    Raises:
        InvalidArgument: the artifact store is remote, or ``grace`` is negative.
        NotFound: a dataset manifest or model package that is referred to is missing, so
            the files it lists cannot be told from garbage; no blob is deleted then.
    """
    from ferryml.store.factory import open_artifact_store, open_sql_store
    from ferryml.store.sql_references import SqlReferenceStore

    if grace < 0:
        raise InvalidArgument(f"The grace period must be 0 or more seconds; got {grace}.")
    store = open_sql_store(settings)  # on the store's own host: refused through a server
    artifacts = open_artifact_store(settings)
    try:
        cutoff = time.time() - grace
        if not dry_run:
            artifacts.delete_leftovers(cutoff)
        # Listed first (a remote store is refused before anything is removed), and before
        # the references are read, so a reference recorded later is still seen.
        stale = artifacts.list_stale_blobs(cutoff)
        experiments, runs = _purge(store, dry_run)
        pending = _journaled_digests(settings.journal_dir, store, deleted_runs=not dry_run)
        refs = SqlReferenceStore(store).list_blob_references(deleted_runs=not dry_run)
        used = set(pending) | refs.direct | refs.manifests | refs.packages
        used |= _listed(artifacts, refs.manifests, refs.packages)
        garbage = sorted(set(stale) - used)
        deleted = 0
        freed = 0
        for digest in garbage:
            if dry_run or artifacts.delete_blob(digest, unless_used_after=cutoff):
                deleted += 1
                freed += stale[digest]
        return GcReport(
            runs, experiments, deleted, freed, len(stale) - len(garbage), grace, dry_run
        )
    finally:
        store.close()


def _purge(store: TrackingStore, dry_run: bool) -> tuple[int, int]:
    """Remove deleted experiments (with their runs), then deleted runs, for good."""
    gone = store.list_experiments(ViewType.DELETED_ONLY)
    for experiment in gone:
        if not dry_run:
            store.delete_experiment(experiment.experiment_id)
    live = [e.experiment_id for e in store.list_experiments(ViewType.ACTIVE_ONLY)]
    runs = 0
    offset: int | None = 0
    while live and offset is not None:
        found, offset = store.search_runs(
            live,
            max_results=50_000,
            offset=offset if dry_run else 0,  # removed runs no longer take a place
            run_view_type=ViewType.DELETED_ONLY,
        )
        for run in found:
            if not dry_run:
                store.delete_run(run.run_id)
        runs += len(found)
    return len(gone), runs


def _journaled_digests(folder: Path, store: TrackingStore, deleted_runs: bool) -> set[str]:
    """Artifacts in the journals of processes, applied or not yet, of runs that still
    exist (the records of removed runs are dropped when applied); of active runs only
    unless ``deleted_runs``."""
    from ferryml.store.records import ArtifactRecord
    from ferryml.tracking._journal import decode

    by_run: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.journal")) if folder.is_dir() else ():
        try:
            with open(path, "rb") as handle:
                for r in decode(handle):
                    if type(r) is ArtifactRecord:
                        by_run.setdefault(r.run_id, set()).add(r.digest)
        except FileNotFoundError:
            continue  # applied and removed meanwhile: the store holds its records now
    found: set[str] = set()
    for run_id, digests in by_run.items():
        try:
            info = store.get_run_info(run_id)
        except NotFound:
            continue
        if deleted_runs or info.lifecycle_stage == "active":
            found |= digests
    return found


def _listed(
    artifacts: ArtifactStore, manifests: Iterable[str], packages: Iterable[str]
) -> set[str]:
    """The blobs that referenced dataset manifests and model packages list."""
    from ferryml.data._manifest import Manifest
    from ferryml.registry.package import PackageMeta

    found: set[str] = set()
    for digest in manifests:
        data = _container(artifacts, digest, "dataset manifest", "`ferry data pull`")
        found.update(e.digest for e in Manifest.from_bytes(data, digest).entries)
    for digest in packages:
        data = _container(artifacts, digest, "model package", "re-registering the model")
        found.update(PackageMeta.from_bytes(data, digest).files.values())
    return found


def _container(artifacts: ArtifactStore, digest: str, what: str, fix: str) -> bytes:
    try:
        return artifacts.get_bytes(digest)
    except NotFound as e:
        raise NotFound(
            f"ferry gc stopped before deleting any blob: {what} {digest} is missing from the "
            "artifact store, so the files it lists cannot be told from garbage. Restore it "
            f"(by {fix}) or delete what uses it, then run gc again."
        ) from e
