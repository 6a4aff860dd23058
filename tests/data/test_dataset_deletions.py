"""Deleting dataset versions: gone from every listing, and the number never reused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.errors import InvalidArgument, NotFound


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    ws = Workspace(settings)
    yield ws
    ws.close()


def _add(ws: Workspace, name: str, digest: str) -> int:
    created = ws.datasets.create_dataset_version(
        name, kind="file", manifest_digest=digest * 64, files=1, size=1
    )
    return created.version


def test_a_deleted_version_is_hidden_and_its_number_is_not_reused(workspace: Workspace) -> None:
    assert [_add(workspace, "wine", d) for d in "abc"] == [1, 2, 3]

    assert workspace.delete_version("wine@3").version == 3
    workspace.delete_version("wine@1")

    assert [v.version for v in workspace.log("wine")] == [2]
    assert [v.ref for v in workspace.list_datasets()] == ["wine@2"]
    assert workspace.version("wine").version == 2
    with pytest.raises(NotFound, match="Version 3 of dataset 'wine' was deleted. See `ferry"):
        workspace.version("wine@3")
    assert _add(workspace, "wine", "c") == 4

    workspace.delete_version("wine@2")
    workspace.delete_version("wine@4")
    assert workspace.list_datasets() == []
    with pytest.raises(NotFound, match="Dataset 'wine' not found. See `ferry data ls`."):
        workspace.log("wine")


def test_deleting_needs_a_known_version(workspace: Workspace) -> None:
    _add(workspace, "wine", "a")
    with pytest.raises(InvalidArgument, match="'wine' names no version; delete one version"):
        workspace.delete_version("wine")
    with pytest.raises(NotFound, match="Dataset 'wine' has no version 7"):
        workspace.delete_version("wine@7")


def test_data_delete_on_the_command_line(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("1")
    cli("data", "add", "a.txt")
    (tmp_path / "a.txt").write_text("2")
    cli("data", "add", "a.txt")

    code, out, _ = cli("data", "delete", "a.txt@1")
    assert (code, out) == (0, "Deleted a.txt@1; `ferry gc` reclaims its files.\n")
    code, _, err = cli("data", "delete", "a.txt@1")
    assert (code, err) == (
        1,
        "error: Version 1 of dataset 'a.txt' was deleted. See `ferry data log a.txt`.\n",
    )
    code, _, err = cli("data", "delete", "a.txt")
    assert code == 2 and "'a.txt' names no version; delete one version at a time" in err
