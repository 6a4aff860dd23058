"""Pointer files (``PATH.ferry``): small, committed to git beside the code, naming the
exact content of a data path, so an old commit plus ``ferry data checkout`` restores it."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ferryml.errors import InvalidArgument

SUFFIX = ".ferry"
_HEADER = (
    "# ferryml data pointer: commit this file with your code.\n"
    "# `ferry data checkout` restores the data it names.\n"
)
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Pointer:
    name: str
    version: int
    kind: str
    path: str  # relative to the project root, '/'-separated
    manifest: str
    files: int
    size: int

    def write(self, file: Path) -> None:
        import yaml

        text = _HEADER + yaml.safe_dump(asdict(self), sort_keys=False)
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, file)

    @classmethod
    def read(cls, file: Path) -> Pointer:
        import yaml

        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise InvalidArgument(f"Pointer file {file} does not exist.") from e
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InvalidArgument(f"Pointer file {file} cannot be read: {e}.") from e
        fields = ("name", "version", "kind", "path", "manifest", "files", "size")
        problem = None
        if not isinstance(data, dict):
            problem = "it is not a mapping"
        elif missing := [f for f in fields if f not in data]:
            problem = f"it lacks {', '.join(missing)}"
        elif not _DIGEST.fullmatch(str(data["manifest"])):
            problem = f"manifest {data['manifest']!r} is not a digest"
        elif not all(isinstance(data[f], int) for f in ("version", "files", "size")):
            problem = "version, files and size must be whole numbers"
        if problem:
            raise InvalidArgument(
                f"Pointer file {file} is malformed: {problem}. Restore it from git "
                f"(`git checkout -- {file.name}`) or add the data again with `ferry data add`."
            )
        assert isinstance(data, dict)
        return cls(**{f: data[f] for f in fields})


def pointer_file(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + SUFFIX)
