"""What a run records about where it ran: code version, interpreter, packages, command."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import blake3

from ferryml._identity import current_user

__all__ = ["Environment", "capture"]

PACKAGES_ARTIFACT = "environment/packages.txt"


@dataclass(frozen=True)
class Environment:
    tags: dict[str, str]
    packages: str  # one "name==version" a line, sorted


def capture(cwd: Path) -> Environment:
    """The environment of a run started now in ``cwd``."""
    packages = _packages()
    tags = {
        "ferry.python": platform.python_version(),
        "ferry.platform": platform.platform(),
        "ferry.command": " ".join(
            [Path(sys.argv[0]).name if sys.argv else "", *sys.argv[1:]]
        ).strip()[:8000],
        "ferry.user": current_user(),
        "ferry.packages.digest": blake3.blake3(packages.encode()).hexdigest(),
    }
    tags.update(_git(cwd))
    return Environment(tags=tags, packages=packages)


@lru_cache(maxsize=1)  # installed packages rarely change while a process runs
def _packages() -> str:
    # Names and versions from the *.dist-info folder names: parsing every METADATA file
    # costs ~70 ms for a few hundred packages, the folder listing ~1 ms.
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and "-" in name:
                package, _, version = name[: -len(".dist-info")].partition("-")
                found.setdefault(package.lower().replace("_", "-"), f"{package}=={version}")
    return "\n".join(sorted(found.values(), key=str.lower)) + "\n"


def _git(cwd: Path) -> dict[str, str]:
    """Commit, dirty flag and a digest of the uncommitted diff, when ``cwd`` is in git."""
    status = _run_git(cwd, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return {}
    commit = ""
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2]
        elif line and not line.startswith("#"):
            dirty = True
    tags = {"ferry.git.commit": commit, "ferry.git.dirty": str(dirty).lower()}
    if dirty:
        diff = _run_git(cwd, "diff", "HEAD", "--binary") or ""
        tags["ferry.git.diff_digest"] = blake3.blake3(diff.encode()).hexdigest()
    return tags


def _run_git(cwd: Path, *args: str) -> str | None:
    if _git_missing():
        return None
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@lru_cache(maxsize=1)
def _git_missing() -> bool:
    import shutil

    return shutil.which("git") is None
