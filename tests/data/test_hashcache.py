"""The hash cache's storage: a row per folder, looked up by folder, file or subfolder."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from ferryml.data._hashcache import HashCache


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
