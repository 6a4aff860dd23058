"""Packs: many small blobs of a remote store in one object, so a transfer of thousands of
small files costs a few requests, not one per file.

Under the store's root, ``packs/<digest>.pack`` holds the blobs' bytes one after another
(``<digest>`` is the pack's own blake3) and ``packs/<digest>.idx`` lists each blob's
digest, offset and size as JSON. The index is written after its pack, so an index names
a whole pack; a pack without its index (an interrupted push) is ignored, and the next
push sends its blobs again. Blobs stay addressed by their own digest: a blob is stored
once whether loose (``blobs/``, readable as before) or packed, and a reader fetches only
the byte ranges it wants, each checked against its digest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NamedTuple

import blake3

from ferryml.errors import FerryError, IntegrityError, StoreUnavailable
from ferryml.store._blobfiles import _DIGEST, _write_new
from ferryml.store.artifacts import ArtifactStore

__all__ = ["PACK_BYTES", "Packed", "list_packed", "read_packed", "write_packs"]

PACK_BYTES = 4 << 20  # big enough to make requests few, small enough to resume often
_GAP = 1 << 20  # wanted blobs closer than this in a pack are fetched in one range
_WORKERS = 4
_FORMAT = 1


class Packed(NamedTuple):
    """Where a packed blob lies: its pack's digest, offset and size."""

    pack: str
    offset: int
    size: int


def list_packed(store: ArtifactStore) -> dict[str, Packed]:
    """Every packed blob of ``store`` by digest, from its pack indexes (one listing and a
    read per index)."""
    fs, root = _objects(store)
    with _io(store, "Listing packs"):
        try:
            keys = [k for k in fs.find(f"{root}/packs/") if k.endswith(".idx")]
        except FileNotFoundError:
            return {}
        indexes = fs.cat(keys, on_error="return") if keys else {}
    found: dict[str, Packed] = {}
    for key, data in indexes.items():
        if isinstance(data, FileNotFoundError):
            continue  # removed meanwhile
        if isinstance(data, BaseException):
            raise StoreUnavailable(
                f"Reading pack index {key} in artifact store {store.url!r} failed: {data}. "
                "Check the store is reachable."
            ) from data
        pack = os.path.basename(key)[: -len(".idx")]
        for digest, offset, size in _parse_index(store, key, data):
            found.setdefault(digest, Packed(pack, offset, size))
    return found


def write_packs(
    store: ArtifactStore,
    read: Callable[[list[str]], dict[str, bytes]],
    digests: list[str],
    sizes: dict[str, int],
) -> list[int]:
    """Pack the blobs ``digests`` (``read(chunk)`` gives their bytes by digest, checked)
    into packs of about ``PACK_BYTES``, uploaded concurrently; return the bytes of each
    pack. A pack is visible only once its index is written, after it."""
    groups: list[list[str]] = [[]]
    filled = 0
    for digest in digests:
        if groups[-1] and filled + sizes[digest] > PACK_BYTES:
            groups.append([])
            filled = 0
        groups[-1].append(digest)
        filled += sizes[digest]

    def one(group: list[str]) -> int:
        blobs = read(group)
        offset, index, parts = 0, [], []
        for digest in group:
            data = blobs[digest]
            index.append([digest, offset, len(data)])
            parts.append(data)
            offset += len(data)
        body = b"".join(parts)
        name = blake3.blake3(body).hexdigest()
        idx = json.dumps({"format": _FORMAT, "blobs": index}, separators=(",", ":")).encode()
        _put(store, f"packs/{name}.pack", body)
        _put(store, f"packs/{name}.idx", idx)  # last: the pack is whole
        return len(body)

    with ThreadPoolExecutor(_WORKERS) as pool:
        return list(pool.map(one, [g for g in groups if g]))


def read_packed(
    store: ArtifactStore,
    wanted: dict[str, Packed],
    sink: Callable[[dict[str, bytes]], None],
    corrupt: Callable[[str], None] | None = None,
) -> int:
    """Hand the bytes of the packed blobs ``wanted``, checked against their digests, to
    ``sink`` a batch per range read (concurrently): neighbours in a pack come in one
    request, the rest of the pack not at all. Returns the blobs' bytes.

    Raises IntegrityError if a blob's bytes hash to something else, unless ``corrupt`` is
    given: then it is told each such digest, and the rest are read."""
    fs, root = _objects(store)
    ranges: list[tuple[str, int, int, list[tuple[str, Packed]]]] = []
    by_pack: dict[str, list[tuple[str, Packed]]] = {}
    for digest, where in wanted.items():
        by_pack.setdefault(where.pack, []).append((digest, where))
    for pack, members in sorted(by_pack.items()):
        members.sort(key=lambda m: m[1].offset)
        run: list[tuple[str, Packed]] = []
        for member in members:
            if run and (
                member[1].offset - (run[-1][1].offset + run[-1][1].size) > _GAP
                or member[1].offset + member[1].size - run[0][1].offset > PACK_BYTES
            ):
                ranges.append(_range(pack, run))
                run = []
            run.append(member)
        ranges.append(_range(pack, run))

    def fetch(item: tuple[str, int, int, list[tuple[str, Packed]]]) -> int:
        pack, start, end, members = item
        with _io(store, f"Reading pack {pack}"):
            data = fs.cat_file(f"{root}/packs/{pack}.pack", start=start, end=end)
        out = {}
        for digest, where in members:
            blob = data[where.offset - start : where.offset - start + where.size]
            if blake3.blake3(blob).hexdigest() != digest:
                if corrupt is not None:
                    corrupt(digest)
                    continue
                raise IntegrityError(
                    f"Blob {digest} in pack {pack} of artifact store {store.url!r} is "
                    "corrupt. Run `ferry data push --repair` from a store that holds it whole."
                )
            out[digest] = blob
        sink(out)
        return sum(len(blob) for blob in out.values())

    with ThreadPoolExecutor(_WORKERS) as pool:
        return sum(pool.map(fetch, ranges))


def _range(
    pack: str, run: list[tuple[str, Packed]]
) -> tuple[str, int, int, list[tuple[str, Packed]]]:
    return pack, run[0][1].offset, run[-1][1].offset + run[-1][1].size, run


def _parse_index(store: ArtifactStore, key: str, data: bytes) -> list[tuple[str, int, int]]:
    try:
        body = json.loads(data)
        if body.get("format") != _FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        entries = [(str(d), int(o), int(s)) for d, o, s in body["blobs"]]
        # A blob larger than a pack is no pack's: a reader would fetch what it claims.
        if not all(_DIGEST.fullmatch(d) and o >= 0 and 0 <= s <= PACK_BYTES for d, o, s in entries):
            raise ValueError("a malformed entry")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(
            f"Pack index {key} in artifact store {store.url!r} is not a ferryml pack index "
            f"({e}). Delete it and its pack, then push again."
        ) from e
    return entries


def _objects(store: ArtifactStore) -> tuple[Any, str]:
    fs, root, _ = store.objects()
    return fs, root


def _put(store: ArtifactStore, key: str, data: bytes) -> None:
    fs, root, local = store.objects()
    with _io(store, f"Writing {key}"):
        if local:
            _write_new(f"{root}/{key}", data, 0o444, False)  # atomic, as a PUT is
        else:
            fs.pipe_file(f"{root}/{key}", data)


@contextmanager
def _io(store: ArtifactStore, what: str) -> Iterator[None]:
    try:
        yield
    except FerryError:
        raise
    except Exception as e:  # remote clients raise their own types (botocore, aiohttp)
        raise StoreUnavailable(
            f"{what} in artifact store {store.url!r} failed: {e}. "
            "Check the store is reachable, writable and has free space."
        ) from e
