"""Data versioning, end to end through the Workspace API, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ferryml.config import Settings
from ferryml.data.compare import diff_versions
from ferryml.data.profile import profile_frame
from ferryml.data.workspace import Workspace, parse_ref
from ferryml.errors import InvalidArgument, NotFound


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data" / "images" / "sub").mkdir(parents=True)
    for i in range(30):
        (root / "data" / "images" / f"{i}.bin").write_bytes(os.urandom(100) + bytes([i]))
    (root / "data" / "images" / "sub" / "deep.txt").write_text("deep")
    return root


@pytest.fixture
def ws(project: Path, store_url: str) -> Workspace:
    home = project / ".ferry"
    settings = Settings(
        home=home, store_url=store_url, artifacts_url=(home / "artifacts").as_uri(), root=project
    )
    workspace = Workspace(settings)
    yield workspace
    workspace.close()


def blobs(ws: Workspace) -> set[str]:
    return ws.artifacts.list_digests()


def test_adding_a_folder_makes_version_1_and_a_pointer_file(ws: Workspace, project: Path) -> None:
    version = ws.add("data/images")
    assert (version.name, version.version, version.kind, version.files) == (
        "data/images",
        1,
        "folder",
        31,
    )
    pointer = (project / "data" / "images.ferry").read_text()
    assert "name: data/images" in pointer and f"manifest: {version.manifest_digest}" in pointer
    assert ws.add("data/images") == version  # unchanged content: the same version


def test_a_new_version_stores_only_what_changed(ws: Workspace, project: Path) -> None:
    ws.add("data/images")
    before = blobs(ws)
    (project / "data" / "images" / "3.bin").write_bytes(b"changed")
    v2 = ws.add("data/images")
    added = blobs(ws) - before
    assert v2.version == 2
    assert len(added) == 2  # the changed file and the new manifest


def test_status_shows_added_removed_modified_and_missing(ws: Workspace, project: Path) -> None:
    ws.add("data/images")
    images = project / "data" / "images"
    (images / "new.bin").write_bytes(b"new")
    (images / "1.bin").unlink()
    (images / "2.bin").write_bytes(b"edited")
    (status,) = ws.status()
    assert (status.added, status.removed, status.modified) == (("new.bin",), ("1.bin",), ("2.bin",))
    assert not status.clean
    import shutil

    shutil.rmtree(images)
    (status,) = ws.status(["data/images"])
    assert status.missing


def test_checkout_restores_a_deleted_folder_exactly(ws: Workspace, project: Path) -> None:
    import shutil

    images = project / "data" / "images"
    original = {p.relative_to(images): p.read_bytes() for p in images.rglob("*") if p.is_file()}
    ws.add("data/images")
    shutil.rmtree(images)
    assert ws.checkout() == [("data/images", 1, 31, "")]
    restored = {p.relative_to(images): p.read_bytes() for p in images.rglob("*") if p.is_file()}
    assert restored == original
    assert ws.checkout() == [("data/images", 1, 0, "")]  # nothing to rewrite


def test_checkout_of_an_older_version_keeps_files_the_user_never_added(
    ws: Workspace, project: Path
) -> None:
    images = project / "data" / "images"
    ws.add("data/images")
    (images / "later.bin").write_bytes(b"added in v2")
    (images / "0.bin").write_bytes(b"v2 content")
    ws.add("data/images")
    (images / "scratch.txt").write_text("never added")
    ws.checkout("data/images@1")
    assert not (images / "later.bin").exists()  # in the store: safe to remove
    assert (images / "scratch.txt").read_text() == "never added"
    assert (images / "0.bin").read_bytes() != b"v2 content"


def test_editing_a_checked_out_file_never_touches_the_store(ws: Workspace, project: Path) -> None:
    import shutil

    version = ws.add("data/images")
    shutil.rmtree(project / "data" / "images")
    ws.checkout()
    with open(project / "data" / "images" / "0.bin", "ab") as f:
        f.write(b"appended in place")
    for entry in ws.manifest(version).entries:
        ws.artifacts.get_bytes(entry.digest)  # verifies every blob against its digest


def test_an_old_pointer_file_from_git_restores_that_version(ws: Workspace, project: Path) -> None:
    pointer = project / "data" / "images.ferry"
    ws.add("data/images")
    old_pointer = pointer.read_text()
    old_bytes = (project / "data" / "images" / "5.bin").read_bytes()
    (project / "data" / "images" / "5.bin").write_bytes(b"new")
    ws.add("data/images")
    pointer.write_text(old_pointer)  # what `git checkout OLD -- data/images.ferry` does
    ws.checkout()
    assert (project / "data" / "images" / "5.bin").read_bytes() == old_bytes


def test_a_table_version_has_rows_schema_and_profile(ws: Workspace) -> None:
    frame = pd.DataFrame({"age": np.arange(200) % 90, "plan": ["free", "pro"] * 100})
    version = ws.add_frame(frame, "customers")
    assert (version.kind, version.rows) == ("table", 200)
    pd.testing.assert_frame_equal(ws.load("customers@1"), frame)
    assert ws.profile("customers").to_dict() == profile_frame(frame).to_dict()


def test_diff_of_tables_reports_rows_schema_and_what_moved(ws: Workspace) -> None:
    a = pd.DataFrame({"age": np.arange(100), "plan": ["free"] * 100})
    b = pd.DataFrame({"age": np.arange(150) + 50.5, "plan": ["pro"] * 150, "score": 1.0})
    ws.add_frame(a, "t")
    ws.add_frame(b, "t")
    result = diff_versions(ws, "t@1", "t@2")
    assert result.modified == ("",)
    assert result.rows == (100, 150)
    assert result.schema is not None and result.schema.added == ("score",)
    assert [c.column for c in result.schema.kind_changes] == ["age"]
    moved = {(s.column, s.statistic): (s.before, s.after) for s in result.shifts}
    assert moved[("plan", "top")] == ("free", "pro")
    assert moved[("age", "mean")][1] > moved[("age", "mean")][0]


def test_diff_of_folders_lists_files(ws: Workspace, project: Path) -> None:
    ws.add("data/images")
    (project / "data" / "images" / "0.bin").unlink()
    (project / "data" / "images" / "x.bin").write_bytes(b"x")
    ws.add("data/images")
    result = diff_versions(ws, "data/images@1", "data/images")
    assert (result.added, result.removed, result.modified) == (("x.bin",), ("0.bin",), ())


def test_load_of_a_folder_is_a_local_copy(ws: Workspace, project: Path) -> None:
    ws.add("data/images")
    path = ws.load("data/images@1")
    assert isinstance(path, Path)
    assert (path / "sub" / "deep.txt").read_text() == "deep"


def test_a_csv_file_is_versioned_as_a_table(ws: Workspace, project: Path) -> None:
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(project / "data" / "t.csv", index=False)
    version = ws.add("data/t.csv")
    assert (version.kind, version.rows) == ("table", 3)
    assert list(ws.load("data/t.csv")["x"]) == [1, 2, 3]


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("data/nope", NotFound, "Path 'data/nope' does not exist"),
        ("../outside", InvalidArgument, "is outside the project"),
        (".ferry", InvalidArgument, "ferryml's own folder"),
        (".", InvalidArgument, "is the project or ferryml's own folder"),
    ],
)
def test_bad_paths_are_refused_and_nothing_is_recorded(
    ws: Workspace, project: Path, path: str, error: type[Exception], message: str
) -> None:
    (project.parent / "outside").mkdir(exist_ok=True)
    (project / ".ferry").mkdir(exist_ok=True)
    with pytest.raises(error, match=message):
        ws.add(path)
    assert ws.list_datasets() == []


def test_unknown_names_versions_and_bad_refs_are_clear_errors(ws: Workspace) -> None:
    ws.add("data/images")
    with pytest.raises(NotFound, match=r"Dataset 'nope' not found. See `ferry data ls`"):
        ws.version("nope")
    with pytest.raises(NotFound, match=r"Dataset 'data/images' has no version 9"):
        ws.version("data/images@9")
    with pytest.raises(InvalidArgument, match="'abc' in 'x@abc' is not a positive whole number"):
        parse_ref("x@abc")
    with pytest.raises(InvalidArgument, match="Dataset name 'a b' is invalid"):
        parse_ref("a b")
    with pytest.raises(NotFound, match="is not tracked. Track it with `ferry data add"):
        ws.status(["data/untracked"])


def test_a_malformed_pointer_file_is_named_with_the_fix(ws: Workspace, project: Path) -> None:
    ws.add("data/images")
    (project / "data" / "images.ferry").write_text("name: data/images\nversion: one\n")
    with pytest.raises(InvalidArgument, match=r"images.ferry is malformed: it lacks kind.*git"):
        ws.checkout()


def test_validation_uses_the_expectations_in_ferry_yaml(ws: Workspace, project: Path) -> None:
    (project / "ferry.yaml").write_text(
        "data:\n  people:\n    expectations:\n"
        "      - not_null: age\n      - range: {column: age, min: 0, max: 120}\n"
    )
    ws.add_frame(pd.DataFrame({"age": [30, 40]}), "people")
    assert ws.validate("people").passed
    ws.add_frame(pd.DataFrame({"age": [30, 150, None]}), "people")
    report = ws.validate("people@2")
    assert not report.passed
    assert {r.expectation for r in report.failures} == {"not_null", "range"}


def test_validation_without_expectations_or_of_a_folder_is_refused(ws: Workspace) -> None:
    ws.add("data/images")
    ws.add_frame(pd.DataFrame({"a": [1]}), "t")
    with pytest.raises(InvalidArgument, match="No expectations for 't' in ferry.yaml"):
        ws.validate("t")
    with pytest.raises(InvalidArgument, match="only tables"):
        ws.validate("data/images")
