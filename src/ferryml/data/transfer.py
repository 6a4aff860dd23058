"""``push`` and ``pull``: copy the blobs of dataset versions between the local artifact
store and a remote one, in parallel, only those missing on the other side. An interrupted
transfer resumes where it stopped: each blob lands whole or not at all, and the next run
lists what is there and copies the rest.

Through a team server, the server is the default remote: ``add`` keeps the blobs in the
local artifact store, ``push`` uploads them through the server and ``pull`` downloads
them, both streamed and resumable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from ferryml.data._manifest import Manifest
from ferryml.data.workspace import Workspace
from ferryml.errors import IntegrityError, InvalidArgument, NotFound
from ferryml.store.artifacts import SMALL, ArtifactStore
from ferryml.store.entities import DatasetVersion
from ferryml.store.factory import is_server_url, open_artifact_store
from ferryml.store.packs import Packed, list_packed, read_packed, write_packs

__all__ = ["TransferReport", "pull", "push"]

WORKERS = 16  # transfers wait on the network, not the CPU


@dataclass(frozen=True)
class TransferReport:
    remote: str
    copied: int
    present: int  # already on the receiving side
    bytes: int
    repaired: int = 0  # held corrupt or gone on the receiving side, sent again


@contextmanager
def _remote(ws: Workspace, url: str | None) -> Iterator[ArtifactStore]:
    store = ws.settings.store_url
    target = url or ws.settings.remote or (store if is_server_url(store) else None)
    if not target:
        raise InvalidArgument(
            "No remote given: pass --remote s3://bucket/prefix, or set FERRY_REMOTE "
            "(or `remote:` in ferry.yaml)."
        )
    remote = open_artifact_store(ws.settings, target)
    try:
        yield remote
    finally:
        remote.close()


def _versions(ws: Workspace, refs: list[str] | None) -> list[tuple[str, str | None]]:
    """(manifest digest, profile digest) of the versions named, or of every pointer file and
    every dataset's latest version."""
    if refs:
        chosen: list[DatasetVersion] = [ws.version(r) for r in refs]
        return [(v.manifest_digest, v.profile_digest) for v in chosen]
    found: set[tuple[str, str | None]] = {(p.manifest, None) for _, p in ws.pointers()}
    found |= {(v.manifest_digest, v.profile_digest) for v in ws.list_datasets()}
    return sorted(found, key=lambda pair: pair[0])


def push(
    ws: Workspace, url: str | None = None, refs: list[str] | None = None, *, repair: bool = False
) -> TransferReport:
    """Copy the named versions' blobs (default: all in use whose files this store holds)
    from the local store to ``url``. With ``repair``, the blobs the remote holds already
    are read back and checked too, and those that are corrupt or gone are sent again."""
    wanted: dict[str, int] = {}
    for manifest_digest, profile_digest in _versions(ws, refs):
        if not refs and not ws.artifacts.exists(manifest_digest):
            continue  # added elsewhere (a team's store lists everyone's): not ours to push
        data = ws.artifacts.get_bytes(manifest_digest)
        wanted[manifest_digest] = len(data)
        if profile_digest:
            wanted[profile_digest] = 0
        for entry in Manifest.from_bytes(data, manifest_digest).entries:
            wanted[entry.digest] = entry.size
    with _remote(ws, url) as remote:
        if repair and is_server_url(remote.url):
            raise InvalidArgument(
                "--repair reads a remote store's objects itself; a team server keeps its "
                "blobs checked on its side. Push without --repair, or repair the server's "
                "artifact store on its host (ferry data push --repair --remote URL there)."
            )
        return _copy(ws.artifacts, remote, wanted, remote, repair=repair)


def pull(ws: Workspace, url: str | None = None, refs: list[str] | None = None) -> TransferReport:
    """Copy the named versions' blobs (default: all in use) from ``url`` to the local store."""
    versions = _versions(ws, refs)
    heads = {d for d, _ in versions} | {p for _, p in versions if p}
    with _remote(ws, url) as remote:
        packed = list_packed(remote) if _batched(remote, ws.artifacts) else {}  # read once
        first = _copy(remote, ws.artifacts, dict.fromkeys(heads, 0), remote, packed)
        wanted: dict[str, int] = {}
        for manifest_digest, _ in versions:
            data = ws.artifacts.get_bytes(manifest_digest)
            wanted.update(
                {e.digest: e.size for e in Manifest.from_bytes(data, manifest_digest).entries}
            )
        rest = _copy(remote, ws.artifacts, wanted, remote, packed)
    return TransferReport(
        remote.url,
        first.copied + rest.copied,
        first.present + rest.present,  # the manifests count, as they do in push
        first.bytes + rest.bytes,
    )


def _batched(src: ArtifactStore, dst: ArtifactStore) -> bool:
    return not (is_server_url(src.url) or is_server_url(dst.url))


def _copy(
    src: ArtifactStore,
    dst: ArtifactStore,
    wanted: dict[str, int],
    remote: ArtifactStore,
    packed: dict[str, Packed] | None = None,
    *,
    repair: bool = False,
) -> TransferReport:
    batched = _batched(src, dst)
    pushing = dst is remote
    if packed is None:
        packed = list_packed(remote) if batched else {}
    present = _present(dst, wanted) | (set(packed) & set(wanted) if pushing else set())
    damaged = _damaged(dst, sorted(present & set(wanted)), packed) if repair else set()
    present -= damaged
    missing = sorted(set(wanted) - present)
    unpacked = [d for d in missing if d not in packed] if not pushing else missing
    # A damaged blob goes loose, written over what is there, and a reader of its pack
    # falls back to it.
    small = [d for d in unpacked if batched and 0 < wanted[d] < SMALL and d not in damaged]
    large = sorted(set(unpacked) - set(small))

    def one(digest: str) -> int:
        local = src.local_path(digest)
        if local is not None:
            if digest in damaged:  # only a store we read directly (not a team server's)
                return dst.put_file(local, replace=True).size
            return dst.put_file(local).size
        target = dst.local_path(digest)
        if target is not None:
            src.get_file(digest, target)  # verified on the way
            target.chmod(0o444)
            return target.stat().st_size
        if digest in damaged:
            data = src.get_bytes(digest)
            dst.put_blobs({digest: data})  # written whatever is stored
            return len(data)
        return dst.put_bytes(src.get_bytes(digest)).size

    def batch(digests: list[str]) -> int:
        blobs = src.get_blobs(digests)  # verified on the way
        dst.put_blobs(blobs)
        return sum(len(data) for data in blobs.values())

    with ThreadPoolExecutor(WORKERS) as pool:
        sizes = list(pool.map(one, large))
    if pushing and len(small) >= PACK_MIN:
        # Many small blobs go in packs: a request per few MiB, not per blob.
        sizes += write_packs(dst, src.get_blobs, small, wanted)
        small = []
    elif packed and not pushing:
        sizes.append(_read_packs(src, dst, {d: packed[d] for d in missing if d in packed}))
    # Other small blobs go in batches, each sent concurrently by the remote's client: a
    # request per blob from a thread each would wait on the GIL and the round trips.
    batches = [small[i : i + _BATCH] for i in range(0, len(small), _BATCH)]
    with ThreadPoolExecutor(_BATCH_WORKERS) as pool:
        sizes += pool.map(batch, batches)
    return TransferReport(
        remote.url, len(missing), len(set(wanted) & present), sum(sizes), len(damaged)
    )


def _read_packs(src: ArtifactStore, dst: ArtifactStore, wanted: dict[str, Packed]) -> int:
    """Copy packed blobs; one corrupt in its pack is read from its loose copy (a repair's)."""
    corrupt: list[str] = []
    done = read_packed(src, wanted, dst.put_blobs, corrupt.append)
    if not corrupt:
        return done
    try:
        blobs = src.get_blobs(sorted(corrupt))
    except (NotFound, IntegrityError) as e:
        raise IntegrityError(
            f"Blob {sorted(corrupt)[0]} in pack {wanted[sorted(corrupt)[0]].pack} of "
            f"artifact store {src.url!r} is corrupt ({len(corrupt)} such blobs), and the store "
            "holds no good copy. Run `ferry data push --repair` from a store that holds them "
            "whole, then pull again."
        ) from e
    dst.put_blobs(blobs)
    return done + sum(len(data) for data in blobs.values())


def _damaged(store: ArtifactStore, digests: list[str], packed: dict[str, Packed]) -> set[str]:
    """Those of ``digests`` that ``store`` holds no good copy of: each is read back whole,
    from its pack and else loose (what a repair costs)."""
    bad: set[str] = set()
    lock = threading.Lock()

    def corrupt(digest: str) -> None:
        with lock:
            bad.add(digest)

    read_packed(store, {d: packed[d] for d in digests if d in packed}, lambda _: None, corrupt)
    loose = [d for d in digests if d not in packed or d in bad]
    with ThreadPoolExecutor(WORKERS) as pool:
        good = dict(zip(loose, pool.map(store.verify, loose), strict=True))
    return {d for d, whole in good.items() if not whole}


# Fewer small blobs than this go loose: they cost few requests, and any S3 tool reads them.
PACK_MIN = 100
_BATCH = 256
_BATCH_WORKERS = 4


def _present(store: ArtifactStore, wanted: dict[str, int]) -> set[str]:
    if not is_server_url(store.url):
        return store.list_digests()
    # A team server does not list its blobs to clients: ask for each.
    digests = sorted(wanted)
    with ThreadPoolExecutor(WORKERS) as pool:
        return {d for d, held in zip(digests, pool.map(store.exists, digests), strict=True) if held}
