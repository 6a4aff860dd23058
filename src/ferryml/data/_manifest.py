"""A version's manifest: every file's relative path, digest and size, stored as a blob."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from ferryml.errors import IntegrityError

FORMAT = 1


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated; "" for a single-file version
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    kind: str  # "file" | "folder" | "table"
    entries: tuple[FileEntry, ...]

    @classmethod
    def build(cls, kind: str, entries: Iterable[FileEntry]) -> Manifest:
        return cls(kind, tuple(sorted(entries, key=lambda e: e.path)))

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same files give the same bytes, hence the same digest."""
        body = {
            "format": FORMAT,
            "kind": self.kind,
            "files": [[e.path, e.digest, e.size] for e in self.entries],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, digest: str) -> Manifest:
        try:
            body = json.loads(data)
            entries = tuple(FileEntry(p, d, int(s)) for p, d, s in body["files"])
            return cls(str(body["kind"]), entries)
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(
                f"Manifest {digest} is not a ferryml manifest ({e}). Pull it again with "
                "`ferry data pull`."
            ) from e
