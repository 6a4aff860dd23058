"""Data versioning benchmark: ferryml against DVC on the same workloads, in one run.

Each figure comes with the ratio (how many times faster ferryml is) and its target.

    python benchmarks/data.py [--quick] [--json] [--api] [--rm] [--no-s3] [--small-files]

Both sides are driven through their command lines as a user would (`ferry data add PATH`,
`ferry data checkout`; `dvc add PATH`, `dvc checkout`) in fresh project folders (git repos,
set up with `ferry init` and `dvc init` off the adds' clocks, timed apart), timed from
outside: the wall clock of the subprocess, median of the repeats; the CPU time (user+sys)
is shown beside it, as it suffers less from other work on the machine. DVC gets its own
venv (benchmarks/.cache/dvc-venv, made on first use). Every file the run makes lives under
one temp folder, removed at the end, also on failure. Stdlib only.

Workloads: add a file of random bytes (1 GiB); first add of a folder of small files
(20,000 of 4 KiB in 100 subfolders); add again after changing one file; the status of the
unchanged folder; remove the folder and check it out, then compare every file's bytes;
push the folder to S3 (a moto server on 127.0.0.1, its own process, shared by both
sides), then remove the folder and the local cache and pull it back (`ferry data pull`
and `ferry data checkout`; `dvc pull`, which does both), comparing every file's bytes
again. Each repeat starts from a fresh project;
the sides take turns going first. The data is copied into each project with cp right before
the add, and that copy's time is the floor printed beside the figures, measured in the same
state of the machine.

On this kind of machine creating files right after many were deleted is slow (see
`discard`), so nothing is deleted during the run: folders are moved into a trash folder
(--rm deletes the folder before checkout instead). DVC's own add still deletes each file it
adds and copies it back from its cache.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import itertools
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".cache" / "dvc-venv"
DVC_PY = str(VENV / "bin" / "python")
DVC = str(VENV / "bin" / "dvc")
FERRY_PY = sys.executable  # this script runs from the repo's .venv
FERRY = str(Path(sys.executable).parent / "ferry")
DVC_PIN = "3.67.1"  # the version PEERS.md measured
MOTO = str(Path(sys.executable).parent / "moto_server")
BUCKET = "ferry-bench"
CP_SHARE_TARGET = 1.5  # ferryml's first add and checkout, times cp -r of the folder
FULL = {"big_mib": 1024, "n_files": 20000, "file_kib": 4, "n_dirs": 100, "repeats": 3}
QUICK = {"big_mib": 128, "n_files": 2000, "file_kib": 4, "n_dirs": 20, "repeats": 1}
READD_SHARE_TARGET = 0.10  # ferryml's add after a one-file change, share of its first add
# key, label, target: ferryml this many times faster (None: shown only)
ROWS = [
    ("big_add", "add {big} file", 4),
    ("tree_add", "add {n} files, first", 5),
    ("tree_readd", "add again, one file changed", None),  # target: READD_SHARE_TARGET
    ("status", "status of {n} unchanged files", None),
    ("checkout", "checkout {n} files, folder deleted", 5),
    ("push", "push {n} files to S3 (moto)", 5),
    ("pull", "pull them back and check out, folder and cache deleted", 5),
    ("init", "set up a new project (context)", None),
]
# Used only while `ferry data` is missing from the CLI: the same calls through the Python
# API, in a fresh interpreter per command like the CLI's.
API_DRIVER = """
import sys
from ferryml.data.workspace import Workspace
ws = Workspace()
try:
    ws.add(sys.argv[2]) if sys.argv[1] == "add" else ws.checkout()
finally:
    ws.close()
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_dvc() -> str:
    """Make the DVC venv if missing; return the installed DVC version."""
    marker = VENV / ".installed"  # written last, so a half-made venv is made again
    if not marker.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        log(f"creating {VENV} (once) ...")
        venv.create(VENV, with_pip=True)
        for spec in (f"dvc=={DVC_PIN}", "dvc>=3.67,<3.68", "dvc>=3,<4"):
            log(f"pip install {spec} dvc-s3")
            pip = [DVC_PY, "-m", "pip", "install", "--quiet", spec, "dvc-s3"]
            if subprocess.run(pip, check=False, stdout=sys.stderr).returncode == 0:
                break
        else:
            sys.exit(f"could not install dvc into {VENV}")
        code = "import importlib.metadata as m; print(m.version('dvc'))"
        out = subprocess.run([DVC_PY, "-c", code], capture_output=True, text=True, check=True)
        marker.write_text(out.stdout.strip())
    version = marker.read_text().strip()
    if version != DVC_PIN:
        log(f"note: dvc {DVC_PIN} was not available; using dvc {version}")
    return version


def ferry_cli_ready() -> bool:
    """Whether `ferry data add` and `ferry data checkout` exist yet."""
    for sub in (["data", "add", "--help"], ["data", "checkout", "--help"]):
        p = subprocess.run([FERRY, *sub], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            return False
    return True


class Failed(Exception):
    """A side's command failed, or gave a wrong result (``key``: the workload's row)."""

    def __init__(self, msg: str, key: str = "") -> None:
        super().__init__(msg)
        self.key = key


class Side:
    """One tool: how to set a project up, add a path and check everything out."""

    def __init__(self, name: str, env: dict[str, str], add: list[str], checkout: list[str],
                 init: list[str], pointer_suffix: str) -> None:  # fmt: skip
        self.name, self.env, self.init_cmd = name, env, init
        self.add_cmd, self.checkout_cmd, self.pointer_suffix = add, checkout, pointer_suffix
        self.status_cmd: list[str] = []
        self.push_cmd: list[str] = []
        self.pull_cmds: list[list[str]] = []  # run one after the other, timed together
        self.remote_cmds: list[list[str]] = []  # set the remote up ({url}, {endpoint})
        self.caches: list[str] = []  # folders holding the local copies of the data

    def project(self, parent: Path, label: str, res: dict | None) -> Path:
        """A fresh git repo with a data/ folder, set up by the tool's init command
        (`ferry init`, `dvc init`; timed into ``res["init"]`` if given: the adds' clocks
        exclude it)."""
        folder = Path(tempfile.mkdtemp(prefix=f"{self.name}-{label}-", dir=parent))
        (folder / "data").mkdir()
        self.run(["git", "init", "-q"], folder)
        took = self.run(self.init_cmd, folder)
        if res is not None:
            record(res, "init", took)
        return folder

    def run(self, cmd: list[str], cwd: Path) -> tuple[float, float]:
        """Run a command in the project: its wall clock and CPU time (user + system, its
        children's included) in seconds. Raises Failed."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            text = (p.stderr.strip() or p.stdout.strip())[-2000:]
            raise Failed(f"`{' '.join(cmd[-3:])}` exit {p.returncode}: {text}")
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return elapsed, cpu

    def add(self, project: Path, rel: str) -> tuple[float, float]:
        os.sync()  # earlier writes (the copy of the data) must not be flushed on its clock
        pointer = project / (rel + self.pointer_suffix)
        before = pointer.read_bytes() if pointer.exists() else None
        took = self.run([*self.add_cmd, rel], project)
        if not pointer.is_file() or pointer.read_bytes() == before:  # a no-op cannot PASS
            raise Failed(f"add {rel}: pointer file {pointer.name} not written or unchanged")
        return took

    def checkout(self, project: Path) -> tuple[float, float]:
        os.sync()
        return self.run(self.checkout_cmd, project)

    def runs(self, cmds: list[list[str]], project: Path) -> tuple[float, float]:
        os.sync()
        took = [self.run(cmd, project) for cmd in cmds]
        return sum(t[0] for t in took), sum(t[1] for t in took)


def make_sides(tmp: Path, api: bool) -> tuple[Side, Side]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "DVC_"))}
    # This machine sets PYTHONDONTWRITEBYTECODE, which would leave ferryml's source (an
    # editable install) without .pyc files, compiled again at each command, where DVC's
    # came compiled from pip. Both sides write and read them under the temp folder instead,
    # compiled in an untimed warm-up (warm_up).
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    base["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    # DVC's analytics would reach for a network this machine lacks (it runs after the
    # command, detached); its per-machine state goes under the temp folder, not /var/tmp.
    dvc_env = {**base, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),
               "DVC_GLOBAL_CONFIG_DIR": str(tmp / "dvc-global"),
               "DVC_SYSTEM_CONFIG_DIR": str(tmp / "dvc-system")}  # fmt: skip
    dvc = Side("dvc", dvc_env, [DVC, "add", "-q"], [DVC, "checkout", "-q"], [DVC, "init", "-q"],
               ".dvc")  # fmt: skip
    if api:
        add, checkout = [FERRY_PY, "-c", API_DRIVER, "add"], [FERRY_PY, "-c", API_DRIVER, "co"]
    else:
        add, checkout = [FERRY, "data", "add"], [FERRY, "data", "checkout"]
    dvc.status_cmd = [DVC, "status", "-q"]
    dvc.push_cmd, dvc.pull_cmds = [DVC, "push", "-q"], [[DVC, "pull", "-q"]]
    dvc.remote_cmds = [[DVC, "remote", "add", "-f", "-d", "bench", "{url}"],
                       [DVC, "remote", "modify", "bench", "endpointurl", "{endpoint}"]]  # fmt: skip
    dvc.caches = [".dvc/cache"]
    # `ferry init` creates the store in .ferry/, as `dvc init` makes .dvc/ (a first add
    # without it creates the store itself).
    ferry = Side("ferryml", base, add, checkout, [FERRY, "init"], ".ferry")
    ferry.status_cmd = [FERRY, "data", "status"]
    ferry.push_cmd, ferry.pull_cmds = [FERRY, "data", "push"], [[FERRY, "data", "pull"], checkout]
    ferry.remote_cmds = [["{set FERRY_REMOTE}"]]
    ferry.caches = [".ferry/artifacts", ".ferry/cache"]
    return ferry, dvc


# -- data ------------------------------------------------------------------------------


def make_big(path: Path, mib: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def make_tree(folder: Path, n_files: int, n_dirs: int, size: int) -> None:
    for i in range(n_files):
        sub = folder / f"d{i % n_dirs:03d}"
        if i < n_dirs:
            sub.mkdir(parents=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def tree_digests(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` (relative path -> blake2b of its bytes)."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.blake2b(f.read()).hexdigest()
    return out


def verify_tree(folder: Path, expected: dict[str, str]) -> None:
    """Raise Failed unless ``folder`` holds exactly the expected files and bytes."""
    actual = tree_digests(folder) if folder.is_dir() else {}
    if actual == expected:
        return
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = sorted(p for p in set(actual) & set(expected) if actual[p] != expected[p])
    raise Failed(
        f"checkout gave {len(actual)} files, expected {len(expected)}: {len(missing)} missing "
        f"{missing[:3]}, {len(extra)} extra {extra[:3]}, {len(wrong)} wrong {wrong[:3]}"
    )


# -- workloads -------------------------------------------------------------------------


def record(res: dict, key: str, took: tuple[float, float]) -> None:
    res.setdefault(key, []).append(took[0])
    res.setdefault(f"{key}_cpu", []).append(took[1])


def copy_in(cmd: list[str], floor: str) -> None:
    """Copy the data into a project with cp, timed: the floor of the step that follows,
    measured in the same state of the machine."""
    os.sync()
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    FLOORS.setdefault(floor, []).append(time.perf_counter() - t)


FLOORS: dict[str, list[float]] = {}


def time_floor(cmd: list[str], floor: str) -> None:
    """Time a command that does part of the work alone (its output discarded)."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    FLOORS.setdefault(floor, []).append(time.perf_counter() - t)


def warm_up(side: Side, tmp: Path) -> None:
    """Untimed: one small add and checkout, to compile .pyc files and fill the page cache
    with the tool's code."""
    project = side.project(tmp, "warm-up", None)
    make_tree(project / "data" / "few", 20, 2, 1024)
    side.add(project, "data/few")
    discard(project / "data" / "few", tmp)
    side.checkout(project)
    discard(project, tmp)


def big_add(side: Side, tmp: Path, big: Path, res: dict) -> None:
    project = side.project(tmp, "big", None)
    try:
        copy_in(["cp", str(big), str(project / "data" / "big.bin")], "cp_big")
        record(res, "big_add", step("big_add", side.add, project, "data/big.bin"))
    finally:
        shutil.rmtree(project, ignore_errors=True)  # few files: no slow creates follow


def discard(path: Path, tmp: Path) -> None:
    """Move ``path`` into the run's trash (under ``tmp``, emptied at the end of the run).

    Deleting thousands of files slows down creating files afterwards on this kind of
    machine, for minutes: its ext4 has no journal, and then each new inode's allocation
    skips over every recently freed inode, reading each one (ext4's recently_deleted;
    perf puts 90% of such a `cp -r` there). Measured: `cp -r` of 20,000 files of 4 KiB
    0.5-0.6 s settled, 7-20 s after deleting a few such folders. Other work on the machine
    deletes files too, so the floor printed beside the figures is measured each time. To
    the tools a folder moved away is gone just the same.
    """
    trash = tmp / "trash"
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{next(_TRASHED)}-{path.name}")


_TRASHED = itertools.count()


def tree_round(
    side: Side, tmp: Path, tree: Path, digests: dict[str, str], cfg: dict, rep: int, res: dict
) -> None:
    """First add, add after a one-file change, delete and checkout: one fresh project."""
    project = side.project(tmp, "tree", res)
    try:
        folder = project / "data" / "files"
        copy_in(["cp", "-r", str(tree), str(folder)], "cp_r_tree")
        record(res, "tree_add", step("tree_add", side.add, project, "data/files"))
        changed = sorted(digests)[(rep * 7919 + 4242) % len(digests)]  # a different one each time
        new = os.urandom(cfg["file_kib"] * 1024)
        (folder / changed).write_bytes(new)
        expected = {**digests, changed: hashlib.blake2b(new).hexdigest()}
        record(res, "tree_readd", step("tree_readd", side.add, project, "data/files"))
        time_floor(["find", str(folder), "-type", "f", "-printf", "%s\n"], "stat_tree")
        record(res, "status", step("status", side.runs, [side.status_cmd], project))
        shutil.rmtree(folder) if cfg.get("rm") else discard(folder, tmp)
        took = step("checkout", side.checkout, project)
        step("checkout", verify_tree, folder, expected)  # a wrong result is no figure
        record(res, "checkout", took)
        res["checkout_verified"] = res.get("checkout_verified", 0) + 1
        if cfg.get("s3") and rep < cfg["s3_repeats"]:  # minutes a side against moto
            transfer(side, project, folder, expected, cfg, rep, res)
    finally:
        if project.exists():
            discard(project, tmp)


def transfer(
    side: Side,
    project: Path,
    folder: Path,
    expected: dict[str, str],
    cfg: dict,
    rep: int,
    res: dict,
) -> None:
    """Push the folder's version to a fresh prefix of the bucket; then, with the folder and
    the local cache gone, pull it back into the workspace and compare every file."""
    url, endpoint = f"s3://{BUCKET}/{side.name}-{rep}", cfg["s3"]
    for cmd in side.remote_cmds:
        if cmd == ["{set FERRY_REMOTE}"]:
            side.env["FERRY_REMOTE"] = url
        else:
            side.run([c.format(url=url, endpoint=endpoint) for c in cmd], project)
    record(res, "push", step("push", side.runs, [side.push_cmd], project))
    discard(folder, project.parent)
    for cache in side.caches:
        discard(project / cache, project.parent)
    took = step("pull", side.runs, side.pull_cmds, project)
    step("pull", verify_tree, folder, expected)
    record(res, "pull", took)
    res["pull_verified"] = res.get("pull_verified", 0) + 1


def start_moto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server in its own process on a free port of 127.0.0.1, with the bucket."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = open(tmp / "moto.log", "wb")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                            stderr=subprocess.STDOUT)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    import boto3  # in the repo's venv, as moto is

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    return proc, endpoint


def step(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a failure names the workload ``key``."""
    try:
        return fn(*args)
    except Failed as e:
        raise Failed(str(e), key) from e


def attempt(side: Side, res: dict, group: str, fn: Callable[..., None], *args: Any) -> None:
    """Run one repeat; a failure is recorded against its workload, and the group's later
    repeats are skipped."""
    if group in res.setdefault("failed", []):
        return
    try:
        fn(side, *args, res)
    except Failed as e:
        log(f"[{side.name}] {e.key} FAILED: {e}")
        res.setdefault("errors", {}).setdefault(e.key, str(e))
        res["failed"].append(group)


def hash_floors(big: Path, repeats: int) -> dict[str, float]:
    """Reading and hashing the big file in-process: md5 (DVC's hash), blake3 (ferryml's)."""
    out: dict[str, float] = {}
    hashers: dict[str, Callable[[], Any]] = {"md5": hashlib.md5}
    try:
        import blake3  # in the repo's venv

        hashers["blake3"] = blake3.blake3
    except ImportError:
        pass
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    for name, make in hashers.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            h = make()
            with open(big, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
            h.hexdigest()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


# -- report ----------------------------------------------------------------------------


def report(f: dict, d: dict, cfg: dict) -> list[dict]:
    big = f"{cfg['big_mib'] / 1024:g} GiB" if cfg["big_mib"] >= 1024 else f"{cfg['big_mib']} MiB"
    rows = []
    for key, label, target in ROWS:
        fv = statistics.median(f[key]) if f.get(key) else None
        dv = statistics.median(d[key]) if d.get(key) else None
        ratio = dv / fv if fv and dv else None
        notes = []
        if key == "tree_readd":  # the one target against ferryml's own figure
            first = statistics.median(f["tree_add"]) if f.get("tree_add") else None
            share = fv / first if fv and first else None
            shown = f"<{READD_SHARE_TARGET:.0%} of own first add"
            ok = share is not None and share < READD_SHARE_TARGET
            missing = share is None
            if share is not None:
                notes.append(f"ferryml {share:.1%} of its first add")
        else:
            shown, missing = (f">={target}x" if target else ""), ratio is None
            ok = ratio is not None and target is not None and ratio >= target
        if key == "init":
            notes.append("`ferry init` and `dvc init`, each run in the fresh project before "
                         "its first add, off the adds' clocks")  # fmt: skip
        if key in ("checkout", "pull"):
            notes.append(
                f"bytes of all files checked: ferryml {f.get(f'{key}_verified', 0)}/"
                f"{len(f.get(key, []))}, DVC {d.get(f'{key}_verified', 0)}/"
                f"{len(d.get(key, []))} runs right"
            )
        cp = statistics.median(FLOORS["cp_r_tree"]) if FLOORS.get("cp_r_tree") else None
        if key in ("tree_add", "checkout") and fv and cp:
            within = fv / cp <= CP_SHARE_TARGET
            ok = ok and within
            notes.append(f"ferryml {fv / cp:.1f}x cp -r of the folder ({cp:.2f} s; target "
                         f"<={CP_SHARE_TARGET}x: {'PASS' if within else 'MISS'})")  # fmt: skip
        if key == "status" and FLOORS.get("stat_tree"):
            notes.append(
                f"stat of every file (find) {statistics.median(FLOORS['stat_tree']):.2f} s"
            )
        if key == "pull":
            notes.append("ferryml: `ferry data pull` then `ferry data checkout`; DVC: `dvc pull`")
        fc, dc = (statistics.median(r[f"{key}_cpu"]) if r.get(f"{key}_cpu") else None
                  for r in (f, d))  # fmt: skip
        if fc is not None or dc is not None:
            notes.append(f"CPU (user+sys) ferryml {fmt(fc)} s, DVC {fmt(dc)} s")
        for side, res in (("ferryml", f), ("DVC", d)):
            if key in res.get("errors", {}):
                ok = False
                notes.append(f"{side} FAILED: {res['errors'][key][:300]}")
        samples = f"ferryml {_samples(f.get(key))}, DVC {_samples(d.get(key))}"
        status = "" if not shown else "n/a" if missing else "PASS" if ok else "MISS"
        rows.append({"key": key, "workload": label.format(big=big, n=f"{cfg['n_files']:,}"),
                     "unit": "s", "ferryml": fv, "dvc": dv, "ratio": ratio, "target": shown,
                     "status": status, "samples": samples, "note": "; ".join(notes)})  # fmt: skip
    return rows


def _samples(values: list[float] | None) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values or []) + "]"


def fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:,.2f}" if v < 10 else f"{v:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--api", action="store_true",
                    help="drive ferryml through its Python API (used anyway while the "
                         "`ferry data` commands are missing)")  # fmt: skip
    ap.add_argument("--no-s3", action="store_true", help="skip push and pull (no moto server)")
    ap.add_argument("--s3-repeats", type=int, default=1, help="repeats that push and pull")
    ap.add_argument(
        "--small-files",
        action="store_true",
        help="only the folder of small files (no large file, no hash floors)",
    )
    ap.add_argument("--rm", action="store_true",
                    help="delete the folder before checkout, not move it away (shows "
                         "this machine's slow file creation after mass deletes)")  # fmt: skip
    args = ap.parse_args()
    cfg = {**(QUICK if args.quick else FULL), "rm": args.rm, "s3_repeats": args.s3_repeats}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the temp folder too

    version = ensure_dvc()
    api = args.api or not ferry_cli_ready()
    driver = "Python API in a subprocess" if api else "ferry CLI"
    if api and not args.api:
        log("note: `ferry data add/checkout` not found; driving ferryml through its Python API")
    ferry_version = importlib.metadata.version("ferryml")
    f: dict[str, Any] = {}
    d: dict[str, Any] = {}
    moto: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="ferry-bench-data-", dir="/tmp") as tmp_:
        tmp = Path(tmp_)
        ferry_side, dvc_side = make_sides(tmp, api)
        sides = [(ferry_side, f), (dvc_side, d)]
        if not args.no_s3:
            moto, cfg["s3"] = start_moto(tmp)
            for side, _ in sides:  # as a user points any S3 client at their own endpoint
                side.env.update(AWS_ENDPOINT_URL=cfg["s3"], AWS_ACCESS_KEY_ID="testing",
                                AWS_SECRET_ACCESS_KEY="testing",
                                AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
        log(f"making the data under {tmp} ...")
        big, tree = tmp / "big.bin", tmp / "tree"
        if not args.small_files:
            make_big(big, cfg["big_mib"])
        make_tree(tree, cfg["n_files"], cfg["n_dirs"], cfg["file_kib"] * 1024)
        digests = tree_digests(tree)
        for side, _ in sides:
            try:
                warm_up(side, tmp)
            except Failed as e:  # the workloads will fail the same way, and say so
                log(f"[{side.name}] warm-up FAILED: {e}")
        try:
            for rep in range(0 if args.small_files else cfg["repeats"]):  # sides alternate
                for side, res in sides if rep % 2 == 0 else sides[::-1]:
                    log(f"[{side.name}] add {cfg['big_mib']} MiB file, repeat {rep + 1}")
                    attempt(side, res, "big", big_add, tmp, big)
            for rep in range(cfg["repeats"]):
                for side, res in sides if rep % 2 == 0 else sides[::-1]:
                    log(
                        f"[{side.name}] folder: add, change one, add, status, checkout, push, "
                        f"pull; repeat {rep + 1}"
                    )
                    attempt(side, res, "tree", tree_round, tmp, tree, digests, cfg, rep)
            log("hashing floors ...")
            hashed = {} if args.small_files else hash_floors(big, cfg["repeats"])
        finally:
            if moto is not None:
                moto.terminate()
                moto.wait()
        log(f"removing {tmp} ...")
    floor = {k: sorted(v) for k, v in FLOORS.items()}
    floor.update({f"{k}_in_process": [v] for k, v in hashed.items()})
    rows = report(f, d, cfg)

    if args.json:
        doc = {"config": cfg, "dvc_version": version, "ferryml_version": ferry_version,
               "ferryml_driver": driver, "ferryml": f, "dvc": d, "floors": floor,
               "rows": rows}  # fmt: skip
        print(json.dumps(doc, indent=2))
        return
    print(f"ferryml {ferry_version} ({driver}) vs DVC {version} (own venv); data: {cfg}")
    for r in rows:
        line = f"{r['workload']}: ferryml {fmt(r['ferryml'])} s, DVC {fmt(r['dvc'])} s"
        if r["ratio"]:
            r_ = r["ratio"]
            line += f"; ferryml {r_:.1f}x faster" if r_ >= 1 else f"; ferryml {1 / r_:.1f}x SLOWER"
        if r["target"]:
            line += f" (target {r['target']}: {r['status']})"
        print(line + f" — runs {r['samples']}" + (f"; {r['note']}" if r["note"] else ""))
    floor_text = []
    for key, label in (("cp_r_tree", "cp -r of the folder"), ("cp_big", "cp of the file"),
                       ("stat_tree", "stat of every file of the folder (find)")):  # fmt: skip
        if floor.get(key):  # one copy into each project, right before its timed add
            v = floor[key]
            floor_text.append(f"{label} {statistics.median(v):.2f} s "
                              f"(range {v[0]:.2f}-{v[-1]:.2f} over {len(v)})")  # fmt: skip
    for name in ("blake3", "md5"):
        if f"{name}_in_process" in floor:
            took = floor[f"{name}_in_process"][0]
            gbs = cfg["big_mib"] * (1 << 20) / took / 1e9
            floor_text.append(f"{name} of the file in-process {took:.2f} s ({gbs:.1f} GB/s)")
    print("floors: " + "; ".join(floor_text))
    table: list[tuple[str, ...]] = [("workload", "ferryml", "DVC", "unit", "ratio", "target",
                                     "result")]  # fmt: skip
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "—"
        table.append((r["workload"], fmt(r["ferryml"]), fmt(r["dvc"]), r["unit"], ratio,
                      r["target"], r["status"]))  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    table.insert(1, tuple("-" * w for w in widths))
    print()
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":
    main()
