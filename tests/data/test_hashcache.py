"""The hash cache's storage: a row per folder, looked up by folder, file or subfolder."""

from __future__ import annotations

import logging
import marshal
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from ferryml.data._hashcache import Entry, HashCache, stat_key


def stat(n: int) -> tuple[int, int, int, int]:
    return (n, 10**18 + n, 10**18 + n, 1000 + n)


def test_lookup_returns_the_entries_under_a_folder_and_none_of_a_sibling_sharing_its_prefix(
    tmp_path: Path,
) -> None:
    cache = HashCache(tmp_path / "cache", "file:///store")
    cache.update(
        [
            ("/p/data/a.bin", stat(1), "d1"),
            ("/p/data/files/x.bin", stat(2), "d2"),
            ("/p/data/files/sub/y.bin", stat(3), "d3"),
            ("/p/data/files2/z.bin", stat(4), "d4"),
            ("/p/data/files.bin", stat(5), "d5"),
        ]
    )
    found = cache.lookup(Path("/p/data/files"))
    assert {path: entry.digest for path, entry in found.items()} == {
        "/p/data/files/x.bin": "d2",
        "/p/data/files/sub/y.bin": "d3",
    }
    assert found["/p/data/files/x.bin"].stat == stat(2)
    assert {p: e.digest for p, e in cache.lookup(Path("/p/data/a.bin")).items()} == {
        "/p/data/a.bin": "d1"
    }
    assert cache.lookup(Path("/p/data/missing.bin")) == {}
    assert len(cache.lookup(Path("/p"))) == 5
    cache.close()


def test_an_update_keeps_the_other_entries_of_the_folder_and_replaces_its_own(
    tmp_path: Path,
) -> None:
    cache = HashCache(tmp_path / "cache", "file:///store")
    cache.update([("/p/d/a", stat(1), "old"), ("/p/d/b", stat(2), "b")])
    cache.update([("/p/d/a", stat(3), "new")])
    found = cache.lookup(Path("/p/d"))
    assert {p: (e.stat, e.digest) for p, e in found.items()} == {
        "/p/d/a": (stat(3), "new"),
        "/p/d/b": (stat(2), "b"),
    }
    cache.close()


def _write_half(args: tuple[Path, int]) -> None:
    folder, half = args
    cache = HashCache(folder, "file:///store")
    for i in range(half * 50, half * 50 + 50):  # one transaction each, interleaved
        cache.update([(f"/p/d/{i}", stat(i), f"d{i}")])
    cache.close()


def test_two_processes_updating_one_folder_lose_no_entry(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    HashCache(folder, "file:///store").update([("/p/d/first", stat(0), "d")])
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_write_half, [(folder, 0), (folder, 1)])
    found = HashCache(folder, "file:///store").lookup(Path("/p/d"))
    assert sorted(found) == sorted(["/p/d/first", *(f"/p/d/{i}" for i in range(100))])


def test_the_cache_of_the_last_version_a_row_per_file_is_removed_when_this_one_starts(
    tmp_path: Path,
) -> None:
    seen = HashCache(tmp_path / "seen", "file:///store")
    seen.update([("/p/a", stat(1), "d")])
    seen.close()
    (made,) = (tmp_path / "seen").glob("hashes-v3-*.db")  # the store's tag, in the name
    tag = made.name.removeprefix("hashes-v3-").removesuffix(".db")
    folder = tmp_path / "cache"
    folder.mkdir()
    cache = HashCache(folder, "file:///store")
    old = [folder / f"hashes-v2-{tag}.db", folder / f"hashes-v2-{tag}.db-wal"]
    other = folder / "hashes-v2-0123456789abcdef.db"  # another artifact store's
    for file in [*old, other]:
        file.write_bytes(b"x")
    cache.update([("/p/a", stat(1), "d")])
    assert [f.exists() for f in old] == [False, False] and other.exists()
    cache.close()


def test_a_damaged_row_vouches_for_nothing_and_is_written_again(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "cache", "file:///store")
    cache.update([("/p/d/a", stat(1), "a")])
    (db,) = (tmp_path / "cache").glob("hashes-v3-*.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE folders SET files = x'ff00'")
    assert cache.lookup(Path("/p/d")) == {}  # its files are read again
    cache.update([("/p/d/b", stat(2), "b")])
    assert [e.digest for e in cache.lookup(Path("/p/d")).values()] == ["b"]
    cache.close()


def test_a_row_of_the_wrong_shape_vouches_only_for_its_good_entries_and_an_update_drops_the_rest(
    tmp_path: Path,
) -> None:
    cache = HashCache(tmp_path / "cache", "file:///store")
    cache.update([("/p/d/a", stat(1), "a")])
    good = (stat(1), "a", 10**18)
    row = {"a": good, "b": (1, 2), "c": ((1, 2, 3, "4"), "c", 5), "d": [stat(4), "d", 5], 7: good}
    (db,) = (tmp_path / "cache").glob("hashes-v3-*.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE folders SET files = ?", (marshal.dumps(row),))
    conn.close()
    assert {p: e.digest for p, e in cache.lookup(Path("/p/d")).items()} == {"/p/d/a": "a"}
    assert cache.lookup(Path("/p/d/b")) == {}  # its file is read again
    cache.update([("/p/d/b", stat(2), "b")])
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute("SELECT files FROM folders").fetchone()
    conn.close()
    assert marshal.loads(blob) == {"a": good, "b": marshal.loads(blob)["b"]}
    assert marshal.loads(blob)["b"][:2] == (stat(2), "b")
    cache.close()


def test_a_damaged_cache_file_is_moved_aside_with_a_warning_and_an_empty_one_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "cache"
    made = HashCache(folder, "file:///store")
    made.lookup(Path("/p"))
    made.close()
    (db,) = folder.glob("hashes-v3-*.db")
    db.write_bytes(b"not a database, though it has a database's name" * 100)
    cache = HashCache(folder, "file:///store")
    with caplog.at_level(logging.WARNING, logger="ferryml.data._hashcache"):
        assert cache.lookup(Path("/p/d")) == {}
    assert [r.getMessage() for r in caplog.records] == [
        f"The hash cache {db} is damaged (file is not a database): moved it to "
        f"{db.name}.damaged and started an empty one; files are read again."
    ]
    assert (folder / f"{db.name}.damaged").read_bytes().startswith(b"not a database")
    cache.update([("/p/d/a", stat(1), "a")])
    assert [e.digest for e in cache.lookup(Path("/p/d")).values()] == ["a"]
    cache.close()


def test_a_cache_file_found_damaged_by_an_update_is_moved_aside_and_the_update_kept(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cache"
    cache = HashCache(folder, "file:///store")
    cache.update([(f"/p/d{i}/a", stat(i), "a") for i in range(500)])
    cache.close()
    (db,) = folder.glob("hashes-v3-*.db")
    with db.open("r+b") as file:  # its header is sound, its pages are not
        file.seek(4096)
        file.write(b"garbage" * 4000)
    cache.update([("/p/d1/b", stat(1), "b")])
    assert [e.digest for e in cache.lookup(Path("/p/d1")).values()] == ["b"]
    assert (folder / f"{db.name}.damaged").exists()
    cache.close()


def test_a_damaged_entry_of_the_right_length_vouches_for_no_file(tmp_path: Path) -> None:
    file = tmp_path / "a.bin"
    file.write_bytes(b"a")
    st = file.stat()
    later = st.st_mtime_ns + 10**10
    assert Entry(stat_key(st), "d", later).vouches(st) is True
    assert Entry(stat_key(st), b"d", later).vouches(st) is False  # type: ignore[arg-type]
    assert Entry(stat_key(st), "d", float(later)).vouches(st) is False  # type: ignore[arg-type]
