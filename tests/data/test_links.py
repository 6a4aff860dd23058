"""How checkouts place files (copy, reflink, read-only hardlinks), and the hash cache that
lets an add read only what changed without ever missing a change."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.errors import ConfigError, InvalidArgument


@pytest.fixture
def project() -> Iterator[Path]:
    # Not under pytest's 0700 folder: a test opens files as another user.
    root = Path(tempfile.mkdtemp(prefix="ferry-links-"))
    root.chmod(0o755)
    (root / "data" / "sub").mkdir(parents=True)
    for i in range(20):
        (root / "data" / f"{i}.bin").write_bytes(os.urandom(64) + bytes([i]))
    (root / "data" / "sub" / "deep.txt").write_text("deep")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def workspace(root: Path, link: str | None = None) -> Workspace:
    env = {"FERRY_LINK": link} if link else {}
    return Workspace(Settings.resolve(cwd=root, environ=env))


@pytest.fixture
def ws(project: Path) -> Iterator[Workspace]:
    w = workspace(project)
    yield w
    w.close()


def blob_of(ws: Workspace, version_ref: str, path: str) -> Path:
    entries = ws.manifest(ws.version(version_ref)).by_path()
    local = ws.artifacts.local_path(entries[path].digest)
    assert local is not None
    return local


def all_blobs_intact(ws: Workspace, ref: str) -> None:
    for entry in ws.manifest(ws.version(ref)).entries:
        ws.artifacts.get_bytes(entry.digest)  # raises IntegrityError if a blob changed


def test_the_default_copy_gives_files_of_their_own_that_can_be_edited_in_place(
    ws: Workspace, project: Path
) -> None:
    ws.add("data")
    shutil.rmtree(project / "data")
    ws.checkout()
    restored = project / "data" / "3.bin"
    assert os.stat(restored).st_ino != os.stat(blob_of(ws, "data", "3.bin")).st_ino
    assert os.access(restored, os.W_OK) and restored.stat().st_nlink == 1
    with open(restored, "r+b") as f:  # an edit in place, same size
        f.write(b"X")
    all_blobs_intact(ws, "data")
    assert ws.add("data").version == 2


def test_hardlinks_share_the_stored_file_read_only_and_the_store_survives_edits(
    project: Path,
) -> None:
    ws = workspace(project, "hardlink")
    try:
        ws.add("data")
        shutil.rmtree(project / "data")
        assert ws.checkout()[0].written == 21
        linked = project / "data" / "3.bin"
        assert os.stat(linked).st_ino == os.stat(blob_of(ws, "data", "3.bin")).st_ino
        assert stat.S_IMODE(linked.stat().st_mode) == 0o444
        assert _write_as_a_user(linked) == "PermissionError"
        # an editor's save (a new file renamed over the old) leaves the stored one alone
        new = linked.with_name("3.bin.new")
        new.write_bytes(b"saved by an editor")
        new.replace(linked)
        all_blobs_intact(ws, "data")
        (status,) = ws.status()
        assert status.modified == ("3.bin",)
        # checking out with copies turns the remaining read-only links into own files
        linked.unlink()
        ws.checkout(link="copy")
        for file in (project / "data").rglob("*.bin"):
            assert file.stat().st_nlink == 1 and os.access(file, os.W_OK), file
    finally:
        ws.close()


def _write_as_a_user(path: Path) -> str:
    """What opening ``path`` for writing raises for an ordinary user (root ignores
    permission bits: the child drops to nobody first)."""
    code = (
        "import os, sys\n"
        "if os.getuid() == 0:\n"
        "    os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    open(sys.argv[1], 'r+b').close()\n"
        "    print('opened')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_reflink_gives_an_independent_file_whether_or_not_the_filesystem_clones(
    project: Path,
) -> None:
    ws = workspace(project, "reflink")  # on a filesystem without clones: copies
    try:
        ws.add("data")
        shutil.rmtree(project / "data")
        ws.checkout()
        restored = project / "data" / "sub" / "deep.txt"
        assert restored.read_text() == "deep"
        assert os.stat(restored).st_ino != os.stat(blob_of(ws, "data", "sub/deep.txt")).st_ino
        restored.write_text("edited in place")
        all_blobs_intact(ws, "data")
    finally:
        ws.close()


def test_a_change_of_content_within_the_same_second_is_seen(ws: Workspace, project: Path) -> None:
    """A filesystem keeping whole seconds gives a file edited in the same second the same
    mtime: the hash cache must not trust it."""
    file = project / "data" / "0.bin"
    second = time.time_ns() // 1_000_000_000 * 1_000_000_000
    os.utime(file, ns=(second, second))
    v1 = ws.add("data")
    before = file.read_bytes()
    file.write_bytes(bytes(len(before)))  # same size
    os.utime(file, ns=(second, second))  # same second, as such a filesystem would say
    v2 = ws.add("data")
    assert v2.version == v1.version + 1
    assert ws.manifest(v2).by_path()["0.bin"].digest != ws.manifest(v1).by_path()["0.bin"].digest


def test_a_change_hidden_behind_a_restored_mtime_is_seen(ws: Workspace, project: Path) -> None:
    file = project / "data" / "1.bin"
    old = file.stat()
    v1 = ws.add("data")
    file.write_bytes(b"Z" * old.st_size)
    os.utime(file, ns=(old.st_atime_ns, old.st_mtime_ns))  # size and mtime as before
    assert ws.add("data").version == v1.version + 1


def test_status_right_after_a_checkout_is_clean_and_sees_edits(
    ws: Workspace, project: Path
) -> None:
    ws.add("data")
    shutil.rmtree(project / "data")
    ws.checkout()
    (status,) = ws.status()
    assert status.clean
    (project / "data" / "2.bin").write_bytes(b"edited")
    (status,) = ws.status()
    assert status.modified == ("2.bin",)


def test_an_unknown_link_type_is_one_clear_line(ws: Workspace, project: Path) -> None:
    ws.add("data")
    with pytest.raises(InvalidArgument) as caught:
        ws.checkout(link="symlnk")
    assert str(caught.value) == (
        "Unknown link type symlnk: use one or more of reflink, hardlink, copy, "
        "e.g. --link hardlink,copy."
    )
    with pytest.raises(ConfigError, match=r"^FERRY_LINK: Unknown link type softlink"):
        Settings.resolve(cwd=project, environ={"FERRY_LINK": "softlink"})
    (project / "ferry.yaml").write_text("link: [hardlink, bogus]\n")
    with pytest.raises(ConfigError, match=r"^ferry.yaml: Unknown link type bogus"):
        Settings.resolve(cwd=project, environ={})
    (project / "ferry.yaml").write_text("link: [hardlink, copy]\n")
    assert Settings.resolve(cwd=project, environ={}).link == ("hardlink", "copy")


def test_the_cli_takes_a_link_flag_and_refuses_a_wrong_one(
    cli: Callable[..., tuple[int, str, str]], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_LINK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(project)
    cli("data", "add", "data")
    shutil.rmtree(project / "data")
    code, out, _ = cli("data", "checkout", "--link", "hardlink")
    assert (code, out) == (0, "data: version 1, 21 files written\n")
    assert (project / "data" / "5.bin").stat().st_nlink == 2
    code, _, err = cli("data", "checkout", "--link", "nope")
    assert (code, err) == (
        2,
        "error: Unknown link type nope: use one or more of reflink, hardlink, copy, "
        "e.g. --link hardlink,copy.\n",
    )


def test_the_hash_cache_trusts_no_entry_hashed_in_the_tick_its_file_last_changed() -> None:
    """A file changed again in the tick it was hashed in could keep its size and times (on
    a filesystem keeping whole seconds, in the same second): such an entry is racy (None)
    and its content is read again."""
    from types import SimpleNamespace

    from ferryml.data._hashcache import Entry, stat_key

    def file(mtime: int) -> Any:
        return SimpleNamespace(st_size=5, st_mtime_ns=mtime, st_ctime_ns=mtime, st_ino=7)

    second = 1_700_000_000 * 10**9
    fine = second + 123_456_789
    assert Entry(stat_key(file(fine)), "d", fine + 1).vouches(file(fine)) is True
    assert Entry(stat_key(file(fine)), "d", fine).vouches(file(fine)) is None
    assert Entry(stat_key(file(fine)), "d", fine + 1).vouches(file(fine + 1)) is False
    whole = Entry(stat_key(file(second)), "d", second + 1_999_999_999)
    assert whole.vouches(file(second)) is None
    assert Entry(stat_key(file(second)), "d", second + 2 * 10**9).vouches(file(second)) is True
