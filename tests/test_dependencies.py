"""What pyproject.toml declares and what the locks pin: ranges for users, exact hashed pins
for `make test`, and a lowest-versions lock at pyproject's lower bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Tools for the suite only: pinned exactly, never installed by users.
TOOLS = {"test", "dev"}


def _declared(*, extras: bool = True) -> list[Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    if extras:
        for extra, items in PROJECT["optional-dependencies"].items():
            if extra not in TOOLS:
                found += [Requirement(r) for r in items]
    return found


def _pins(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;#]+)",
                      path.read_text(), re.MULTILINE)  # fmt: skip
    return {canonicalize_name(name): version for name, version in pins}


def _lower(requirement: Requirement) -> str:
    bounds = [s.version for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{requirement} needs one lower bound (>=)"
    return bounds[0]


def test_what_users_install_is_a_range_with_a_lower_bound() -> None:
    for requirement in _declared():
        assert not any(s.operator in ("==", "===", "~=") for s in requirement.specifier), (
            f"{requirement}: declare a range, so ferryml installs beside the user's own"
        )
        _lower(requirement)


def test_the_lock_pins_every_dependency_inside_its_range_with_hashes() -> None:
    lock = ROOT / "requirements" / "lock.txt"
    pins = _pins(lock)
    tools = [Requirement(r) for extra in TOOLS for r in PROJECT["optional-dependencies"][extra]]
    for requirement in _declared() + [r for r in tools if r.name != "ferryml"]:
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not locked: run `make lock`"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock's {requirement.name}=={version} is outside {requirement}: run `make lock`"
        )
    text = lock.read_text()
    assert text.count("==") == len(pins) and text.count("--hash=sha256:") >= len(pins)
    # nothing that names a folder or an index of the machine that compiled it
    assert not re.search(r"file:/|@ /|--(extra-)?index-url|--find-links", text)


def test_the_lowest_lock_holds_every_lower_bound_of_the_core() -> None:
    wanted = {canonicalize_name(r.name): _lower(r) for r in _declared(extras=False)}
    driver = Requirement(PROJECT["optional-dependencies"]["postgres"][0])
    wanted[canonicalize_name(driver.name)] = _lower(driver)
    assert {k: v for k, v in _pins(ROOT / "requirements" / "lowest.in").items()
            if k in wanted} == wanted  # fmt: skip
    lowest = _pins(ROOT / "requirements" / "lowest.txt")
    assert {k: lowest.get(k) for k in wanted} == wanted, "run `make lock`"
