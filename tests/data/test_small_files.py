"""Adding and checking out many small files: each blob stored whole, read-only and once,
nothing left behind under a temp name, with or without the system's unnamed files."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.data import _files
from ferryml.data._files import _in_processes
from ferryml.data.workspace import Workspace
from ferryml.errors import FerryError, NotFound, StoreUnavailable


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for i in range(600):  # past the size where work could go to threads
        folder = tmp_path / "data" / f"d{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.bin").write_bytes(os.urandom(100 + i))
    (tmp_path / "data" / "empty.bin").write_bytes(b"")
    (tmp_path / "data" / "twin.bin").write_bytes((tmp_path / "data" / "d0" / "0.bin").read_bytes())
    return tmp_path


@pytest.fixture
def ws(project: Path) -> Iterator[Workspace]:
    w = Workspace(Settings.resolve(cwd=project, environ={}))
    yield w
    w.close()


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_each_small_file_is_stored_whole_once_and_read_only_with_no_temp_file_left(
    ws: Workspace, project: Path
) -> None:
    version = ws.add("data")
    assert version.files == 602
    blobs = [p for p in (ws.settings.home / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert not [p for p in blobs if p.name.endswith(".tmp")]
    entries = ws.manifest(version).entries
    assert len({e.digest for e in entries}) == 601  # the twin is stored once
    for entry in entries:
        blob = ws.artifacts.local_path(entry.digest)
        assert blob is not None and blob.stat().st_size == entry.size
        assert stat.S_IMODE(blob.stat().st_mode) == 0o444
        assert blob.read_bytes() == (project / "data" / entry.path).read_bytes()


def test_a_damaged_blob_is_written_again_when_its_content_is_added(
    ws: Workspace, project: Path
) -> None:
    content = (project / "data" / "d1" / "1.bin").read_bytes()
    version = ws.add("data")
    blob = ws.artifacts.local_path(ws.manifest(version).by_path()["d1/1.bin"].digest)
    assert blob is not None
    blob.chmod(0o644)
    blob.write_bytes(content[:10])  # cut short, as by a full disk
    (project / "more").mkdir()
    (project / "more" / "copy.bin").write_bytes(content)
    ws.add("more")
    assert blob.read_bytes() == content


def test_a_checkout_into_a_deleted_folder_writes_every_file_and_no_temp_file(
    ws: Workspace, project: Path
) -> None:
    before = files_under(project / "data")
    ws.add("data")
    shutil.rmtree(project / "data")
    (restored,) = ws.checkout()
    assert restored.written == 602
    assert files_under(project / "data") == before
    for file in (project / "data").rglob("*.bin"):
        assert file.stat().st_nlink == 1 and os.access(file, os.W_OK)
    assert ws.status()[0].clean


def test_without_unnamed_files_add_and_checkout_work_the_same(
    ws: Workspace, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)  # as on a system without them
    before = files_under(project / "data")
    ws.add("data")
    shutil.rmtree(project / "data")
    assert ws.checkout()[0].written == 602
    assert files_under(project / "data") == before
    assert not [p for p in project.rglob("*.tmp")]


def test_hardlinked_files_of_a_fresh_checkout_are_the_read_only_blobs(
    project: Path,
) -> None:
    ws = Workspace(Settings.resolve(cwd=project, environ={"FERRY_LINK": "hardlink,copy"}))
    try:
        version = ws.add("data")
        shutil.rmtree(project / "data")
        assert ws.checkout()[0].written == 602
        for entry in ws.manifest(version).entries:
            file = project / "data" / entry.path
            blob = ws.artifacts.local_path(entry.digest)
            assert blob is not None and file.stat().st_ino == blob.stat().st_ino
            assert stat.S_IMODE(file.stat().st_mode) == 0o444
        assert ws.status()[0].clean
    finally:
        ws.close()


def test_a_store_failure_while_storing_many_files_is_one_clear_error_and_records_nothing(
    ws: Workspace, project: Path
) -> None:
    blobs = Path(ws.artifacts.url.removeprefix("file://")) / "blobs"
    ws.artifacts.put_bytes(b"opened")
    for prefix in range(256):  # every blob's folder is a file: no blob can be written
        folder = blobs / f"{prefix:02x}"
        if not folder.exists():
            folder.write_text("not a folder")
    with pytest.raises(StoreUnavailable, match=r"^Writing blob [0-9a-f]{64} in artifact store"):
        ws.add("data")
    assert not (project / "data.ferry").exists()
    assert ws.list_datasets() == []


def test_large_files_are_checked_out_on_threads_whatever_links_the_filesystem_refuses(
    project: Path,
) -> None:
    big = {f"big/{i}.bin": os.urandom((3 << 19) + i) for i in range(4)}  # 1.5 MiB each
    for name, data in big.items():
        (project / name).parent.mkdir(exist_ok=True)
        (project / name).write_bytes(data)
    for links in ("reflink,copy", "reflink,hardlink,copy"):  # no clones on ext4 or tmpfs
        ws = Workspace(Settings.resolve(cwd=project, environ={"FERRY_LINK": links}))
        try:
            ws.add("big")
            shutil.rmtree(project / "big")
            assert ws.checkout("big")[0].written == 4
            assert {f"big/{k}": v for k, v in files_under(project / "big").items()} == big
        finally:
            ws.close()


def _fresh_python(code: str) -> str:
    """``code``'s output from a fresh interpreter: work goes to other processes only from
    a process of one thread, and a test worker has more."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_many_small_files_are_shared_with_other_processes_and_come_back_in_order() -> None:
    found = json.loads(
        _fresh_python(
            """
            import json, os
            from ferryml.data._files import parallel
            items = list(range(2000))
            done = parallel(lambda i: (i, os.getpid()), items, [4096] * 2000, processes=True)
            pids = {pid for _, pid in done}
            print(json.dumps([[i for i, _ in done] == items, os.getpid() in pids, len(pids)]))
            """
        )
    )
    assert found == [True, True, min(4, len(os.sched_getaffinity(0)))]  # one per core


def test_an_error_in_another_process_is_raised_here_as_it_was() -> None:
    said = _fresh_python(
        """
        from ferryml.data._files import parallel
        from ferryml.errors import NotFound

        def fail_last(i: int) -> int:
            if i == 1999:  # in the last process's share
                raise NotFound(f"File {i}.bin not found. Check the path.")
            return i

        try:
            parallel(fail_last, list(range(2000)), [4096] * 2000, processes=True)
        except NotFound as e:
            print(type(e).__name__, e)
        """
    )
    assert said == "NotFound File 1999.bin not found. Check the path.\n"


def test_an_error_that_cannot_cross_processes_arrives_as_its_text() -> None:
    said = _fresh_python(
        """
        from ferryml.data._files import parallel

        class Unpicklable(Exception):
            def __init__(self, a: int, b: int) -> None:
                super().__init__(f"{a}/{b}")

        def fail_last(i: int) -> int:
            if i == 1999:
                raise Unpicklable(i, 0)
            return i

        try:
            parallel(fail_last, list(range(2000)), [4096] * 2000, processes=True)
        except Exception as e:
            print(type(e).__name__, e)
        """
    )
    expected = "FerryError" if len(os.sched_getaffinity(0)) > 1 else "Unpicklable"
    assert said.startswith(expected) and "1999/0" in said


def blocked_in(pid: int, call: str) -> None:
    """Wait until process ``pid`` sleeps in the kernel's ``call`` (pipe_read, pipe_write)."""
    deadline = time.monotonic() + 30
    while not Path(f"/proc/{pid}/wchan").read_text().endswith(call):
        assert time.monotonic() < deadline, f"process {pid} never blocked in {call}"
        time.sleep(0.005)


def reaped(pids: list[int]) -> bool:
    """Whether none of ``pids`` is left, not even as a zombie."""
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_a_worker_killed_while_writing_its_result_is_one_clear_error_and_all_are_reaped(
    tmp_path: Path,
) -> None:
    def big(i: int) -> str:
        (tmp_path / str(os.getpid())).touch()
        return "x" * 100_000  # a share's result fills the pipe many times over

    def kill_the_first_mid_write() -> None:
        while len(pids := sorted(int(p.name) for p in tmp_path.iterdir())) < 3:
            time.sleep(0.005)
        blocked_in(pids[0], "pipe_write")  # as the OOM killer or Ctrl-C may catch it
        os.kill(pids[0], signal.SIGKILL)

    with pytest.raises(FerryError) as caught:
        _in_processes(big, list(range(30)), 3, kill_the_first_mid_write)
    pids = sorted(int(p.name) for p in tmp_path.iterdir())
    assert str(caught.value) == (
        f"A worker process ({pids[0]}) ended without a result; run the command again."
    )
    assert reaped(pids)  # the later ones too


def test_with_sigchld_ignored_as_daemons_leave_it_the_workers_results_come_back() -> None:
    was = signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    try:
        done = _in_processes(lambda i: (i, os.getpid()), list(range(1000)), 2, None)
    finally:
        signal.signal(signal.SIGCHLD, was)
    assert [i for i, _ in done] == list(range(1000))
    assert len({pid for _, pid in done}) == 2


def test_what_no_worker_could_be_started_for_is_done_here_in_order() -> None:
    # In a fresh interpreter: a limit on file descriptors is the whole process's, and a
    # test worker's other threads (servers, loggers) abort when they find none left.
    done, here_pid = json.loads(
        _fresh_python(
            """
            import json, os, resource
            from ferryml.data._files import _in_processes
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            read, write = os.pipe()
            os.close(read)
            os.close(write)
            # room for one more pipe: the first worker starts, the next finds no descriptor
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(read, write) + 1, hard))
            try:
                done = _in_processes(lambda i: (i, os.getpid()), list(range(40)), 4, None)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            print(json.dumps([done, os.getpid()]))
            """
        )
    )
    assert [i for i, _ in done] == list(range(40))
    here = [i for i, pid in done if pid == here_pid]
    assert here == list(range(10)) + list(range(20, 40))  # the second run was the worker's
    assert len({pid for _, pid in done}) == 2


def test_an_interrupt_while_collecting_kills_and_reaps_the_workers_and_closes_their_pipes(
    tmp_path: Path,
) -> None:
    def interrupt_the_parent_then_hang(i: int) -> int:
        (tmp_path / str(os.getpid())).touch()
        if i == 0:
            blocked_in(os.getppid(), "pipe_read")  # waiting for this worker's result
            os.kill(os.getppid(), signal.SIGINT)
        time.sleep(60)
        return i

    def all_started() -> None:
        while len(list(tmp_path.iterdir())) < 3:
            time.sleep(0.005)

    fds = len(os.listdir("/proc/self/fd"))
    was = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _in_processes(interrupt_the_parent_then_hang, list(range(3)), 3, all_started)
    finally:
        signal.signal(signal.SIGINT, was)
    assert reaped([int(p.name) for p in tmp_path.iterdir()])
    assert len(os.listdir("/proc/self/fd")) == fds


def test_the_garbage_collector_is_on_again_after_an_add_a_failure_and_a_checkout(
    ws: Workspace, project: Path
) -> None:
    ws.add("data")
    assert gc.isenabled()
    with pytest.raises(NotFound):
        ws.add("missing")
    assert gc.isenabled()
    gc.disable()  # as a caller may have it
    try:
        ws.checkout()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_folder_is_walked_in_another_process_while_the_metadata_store_opens_here(
    project: Path,
) -> None:
    # In a fresh interpreter: the walk goes to another process only from a process of one
    # thread, and a test worker has more.
    walked_by, here, opened, todo, entries = json.loads(
        _fresh_python(
            f"""
            import json, os
            from pathlib import Path
            from ferryml.config import Settings
            from ferryml.data import _files
            from ferryml.data.workspace import Workspace

            project = Path({str(project)!r})
            walked = project / "walked-by"
            real_walk = _files.walk

            def walk(folder):
                walked.write_text(str(os.getpid()))
                return real_walk(folder)

            _files.walk = walk
            ws = Workspace(Settings.resolve(cwd=project, environ={{}}))
            ws.add("data")
            (project / "data" / "d3" / "3.bin").write_bytes(b"changed")
            opened = []
            entries, todo = _files.scan(
                project / "data", ws.cache, lambda: opened.append(os.getpid())
            )
            ws.close()
            print(json.dumps([
                int(walked.read_text()), os.getpid(), opened, [t[0] for t in todo],
                [bool(e.digest) for e in entries],
            ]))
            """
        )
    )
    assert walked_by != here and opened == [here]
    assert todo == ["d3/3.bin"]  # only the changed file is read again
    assert len(entries) == 601 and all(entries)


def test_with_other_threads_running_the_folder_is_walked_here_then_the_store_opens(
    ws: Workspace, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked: list[int] = []
    real_walk = _files.walk

    def walk(folder: Path) -> Iterator[tuple[str, str, os.stat_result]]:
        walked.append(os.getpid())  # a list: a fork's appends would not show here
        return real_walk(folder)

    monkeypatch.setattr(_files, "walk", walk)
    calls: list[str] = []
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()  # a fork would copy none of it, nor free its locks
    try:
        entries, todo = _files.scan(project / "data", ws.cache, lambda: calls.append("opened"))
    finally:
        stop.set()
        other.join()
    assert walked == [os.getpid()] and calls == ["opened"]
    assert entries == [] and len(todo) == 602


def test_walked_here_a_folder_or_file_is_looked_up_in_the_open_hash_cache_not_another(
    ws: Workspace, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.add("data")  # opens the cache
    opened: list[object] = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k)
    )
    entries, todo = _files.scan(project / "data" / "twin.bin", ws.cache, lambda: None)
    assert (len(entries), todo) == (1, [])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()  # no fork: the walk is done here
    try:
        entries, todo = _files.scan(project / "data", ws.cache, lambda: None)
    finally:
        stop.set()
        other.join()
    assert (len(entries), todo, opened) == (602, [], [])


def test_a_forked_walk_inherits_no_open_hash_cache(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for i in range(20):
        (tmp_path / "data" / f"{i}.bin").write_bytes(os.urandom(10 + i))
    found = _fresh_python(
        f"""
        import contextlib, json, os
        from pathlib import Path
        from ferryml.config import Settings
        from ferryml.data import _files
        from ferryml.data.workspace import Workspace

        root = Path({str(tmp_path)!r})
        ws = Workspace(Settings.resolve(cwd=root, environ={{}}))
        ws.add("data")  # the cache is open now
        real_walk = _files.walk

        def walk(folder):
            held = []
            for fd in os.listdir("/proc/self/fd"):
                with contextlib.suppress(OSError):  # the listing's own descriptor is gone
                    held.append(os.readlink(f"/proc/self/fd/{{fd}}"))
            seen = [os.getpid(), [h for h in held if "hashes-v3" in h]]
            (root / "seen.json").write_text(json.dumps(seen))
            return real_walk(folder)

        _files.walk = walk
        entries, todo = _files.scan(root / "data", ws.cache, lambda: None)
        pid, held = json.loads((root / "seen.json").read_text())
        ws.close()
        print(json.dumps([pid != os.getpid(), held, len(entries), len(todo)]))
        """
    )
    assert json.loads(found) == [True, [], 20, 0]


def test_without_ctypes_small_files_still_go_to_other_processes() -> None:
    if _files._cores() < 2:
        pytest.skip("one usable core: the work is never shared with other processes")
    found = _fresh_python(
        """
        import os, sys
        sys.modules["ctypes"] = None  # as in a Python built without _ctypes
        from ferryml.data._files import parallel
        items = list(range(2000))
        done = parallel(lambda i: (i, os.getpid()), items, [4096] * 2000, processes=True)
        print([i for i, _ in done] == items, len({pid for _, pid in done}) > 1)
        """
    )
    assert found == "True True\n"
