"""The large-artifact workload of the server benchmark's workers: a file uploaded and
downloaded through a server, beside `cp` of the same file, the three steps facing the same
memory state. Stdlib only, so MLflow's venv imports it.

Why the memory state: on a virtual machine whose host backs guest memory only once it is
touched (and takes back what the guest frees), writing 1 GiB into pages never used costs
about 2.7 s here in the kernel alone, while writing it into pages freed a moment before
costs 0.2-0.3 s. A `cp` and a download timed in different states measure the host, not the
copy. So both are measured alike, in two modes:

- kept: every step's output (the copy, the uploaded blob, the downloaded file) stays until
  the end, so each step writes into memory not used of late. An untimed round comes first:
  memory freed before the rounds (the source's writing, an earlier run's files) stays backed
  for a while, and the first step took it (a cp 0.4 s where the next ones took 2.3 s);
- freed: right before each step a file of the same size is deleted (the previous step's
  output, or a copy made untimed after an upload, whose blob the download needs), so each
  step writes into memory just freed.

Each round changes the source's first bytes (a new blob, not a reused one), then times a cp,
the upload and the download; the cp's place among them rotates from round to round so no
step always follows the same one. os.sync() (untimed) before each step: no step is throttled
by the writeback of the one before. Figures are medians of the rounds.

With ``server_pids``, each upload and download also has the server's CPU time: utime+stime
of those processes (from /proc/PID/stat) after the step less before it.
"""

import filecmp
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from statistics import median
from time import perf_counter
from typing import Any

MODES = ("kept", "freed")


def transfer_rounds(
    source: Path,
    tmp: Path,
    upload: Callable[[Path], Any],
    download: Callable[[Any, Path], Path],
    rounds: int,
    modes: tuple[str, ...] = MODES,
    server_pids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Per mode, the medians (s) and every round's time of cp, upload and download (and
    the server's CPU time for the last two), and whether every download equals what was
    uploaded. ``upload(source)`` returns what ``download(handle, folder)`` needs to fetch
    it back into ``folder``."""
    out: dict[str, Any] = {"same": True}
    for mode in modes:
        work = tmp / f"rounds-{mode}"
        work.mkdir()
        times: dict[str, list[float]] = {"cp": [], "upload": [], "download": []}
        if server_pids:
            times.update(upload_cpu=[], download_cpu=[])
        ballast = work / "ballast.bin"
        if mode == "freed":
            _cp(source, ballast)
        for r in range(-1 if mode == "kept" else 0, rounds):  # -1: untimed
            with open(source, "r+b") as f:  # a new blob each round
                f.write(os.urandom(16))
            steps = ["upload", "download"]
            steps.insert(max(r, 0) % 3, "cp")
            handle = None
            for step in steps:
                dest = work / f"{step}-{r}"
                os.sync()
                if mode == "freed":
                    ballast.unlink()
                cpu, t = _cpu_s(server_pids), perf_counter()
                if step == "cp":
                    _cp(source, dest)
                elif step == "upload":
                    handle = upload(source)
                else:
                    dest.mkdir()
                    got = download(handle, dest)
                if r >= 0:
                    times[step].append(perf_counter() - t)
                    if server_pids and step != "cp":
                        times[f"{step}_cpu"].append(_cpu_s(server_pids) - cpu)
                if step == "download":
                    out["same"] = out["same"] and filecmp.cmp(source, got, shallow=False)
                if mode != "freed":
                    continue
                if step == "upload":  # its output is on the server: free a copy instead
                    _cp(source, ballast)
                else:
                    os.replace(got if step == "download" else dest, ballast)
        shutil.rmtree(work)
        out[mode] = {
            **{f"{step}_s": median(ts) for step, ts in times.items()},
            **{f"{step}s": ts for step, ts in times.items()},
        }
    return out


def _cpu_s(pids: tuple[int, ...]) -> float:
    """User and system CPU seconds used so far by ``pids`` (those still running)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")


def _cp(source: Path, dest: Path) -> None:
    subprocess.run(["cp", str(source), str(dest)], check=True)
