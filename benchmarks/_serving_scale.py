"""The scale workloads of benchmarks/serving.py (imported by it, stdlib only):

- many keep-alive connections at once (``--connections N``): wrk with N connections, each
  sending single-row requests; the open-files limit is raised inside this process (its
  children, wrk and the servers, inherit it), never in the system;
- open-loop load (``--open-loop``): _serving_openloop.py at constant arrival rates,
  searching the highest rate at which p99 stays under P99_LIMIT_MS with no error.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
P99_LIMIT_MS = 50.0
OPEN_LOOP = {"full": {"seconds": 5, "bisect": 4}, "quick": {"seconds": 2, "bisect": 2}}
START_RATE, FACTOR, MAX_RATE = 20.0, 2.0, 20_000.0
MAX_CONNS = 256  # the open-loop generator's pool; a request waits for a free one past it


def raise_open_files(connections: int) -> tuple[int, int]:
    """Raise this process's soft open-files limit (not the system's) to what
    ``connections`` sockets need on each side; the (soft, hard) limit it set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connections + 1024
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(
            f"--connections {connections} needs {need} open files per process; this "
            f"system's hard limit is {hard} (raise it, e.g. `ulimit -Hn {need}` as root)."
        )
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def figures(p: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    """The JSON of a load generator's "SERVINGBENCH {json}" line."""
    line = next((x for x in p.stdout.splitlines() if x.startswith("SERVINGBENCH ")), None)
    if line is None:
        said = (p.stderr.strip() or p.stdout.strip())[-500:]
        raise RuntimeError(f"{what} failed ({p.returncode}): {said}")
    doc: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    return doc


def open_loop_run(
    py: str, url: str, body_file: Path, rate: float, seconds: float, timeout: float = 10.0
) -> dict[str, Any]:
    """One run at ``rate`` requests/s for ``seconds``: the generator's figures, in ms."""
    argv = [py, str(HERE / "_serving_openloop.py"), url, str(body_file), f"{rate:.2f}"]
    argv += [str(seconds), str(MAX_CONNS), str(timeout)]
    p = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + timeout + 60, check=False
    )
    r = figures(p, "open-loop generator")
    codes = {int(k): v for k, v in r["codes"].items()}
    non2xx = sum(n for s, n in codes.items() if not 200 <= s < 300)
    failed = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["unanswered"]
    return {
        "rate": rate,
        "sent_rate": r["sent_rate"],
        "lag_ms": r["lag_ms"],
        "p50_ms": r["p50_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "max_ms": r["max_us"] / 1e3,
        "errors": non2xx + failed,
        "codes": codes,
        "requests": r["requests"],
    }


def holds(r: dict[str, Any]) -> bool:
    """p99 under the limit, no error, and the generator kept its schedule."""
    return r["errors"] == 0 and r["p99_ms"] < P99_LIMIT_MS and r["sent_rate"] >= 0.95 * r["rate"]


def max_rate(run: Callable[[float], dict[str, Any]], bisect: int) -> dict[str, Any]:
    """The highest rate that ``holds``: doubling from START_RATE until a rate fails, then
    ``bisect`` halvings of the gap. Returns the best run (None if even START_RATE failed),
    the first failing one above it, and every trial."""
    trials: list[dict[str, Any]] = []
    good: dict[str, Any] | None = None
    bad: dict[str, Any] | None = None
    rate = START_RATE
    while rate <= MAX_RATE:
        r = run(rate)
        trials.append(r)
        if not holds(r):
            bad = r
            break
        good, rate = r, rate * FACTOR
    for _ in range(bisect if bad is not None else 0):
        low = good["rate"] if good else 0.0
        assert bad is not None
        rate = (low + bad["rate"]) / 2
        if rate - low < 5:
            break
        r = run(rate)
        trials.append(r)
        if holds(r):
            good = r
        else:
            bad = r
    return {"best": good, "first_failing": bad, "trials": trials}


def connections_run(
    wrk: str, lua: Path, url: str, body_file: Path, connections: int, seconds: int
) -> dict[str, Any]:
    """wrk with ``connections`` keep-alive connections for ``seconds``: each waits its
    turn (a minute's timeout: with 10,000 connections a turn is seconds long)."""
    argv = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s"]
    argv += ["-s", str(lua), url, "--", str(body_file), "100000000"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 180, check=False)
    r = figures(p, "wrk")
    codes = {int(k): v for k, v in r["codes"].items()}
    ok = sum(n for s, n in codes.items() if 200 <= s < 300)
    socket_errors = {k: r[k] for k in ("connect", "read", "write", "timeout")}
    return {
        "connections": connections,
        "rps": ok / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "max_ms": r["max_us"] / 1e3,
        "requests": r["requests"],
        "codes": codes,
        "socket_errors": socket_errors,
        "failed": sum(socket_errors.values()) + sum(n for s, n in codes.items() if s != 200),
    }


def rate_table(results: dict[str, dict[str, Any]]) -> list[str]:
    head = ("server", f"max rate, p99 < {P99_LIMIT_MS:g} ms", "p50 ms", "p99 ms", "next rate")
    cells: list[tuple[str, ...]] = [head]
    for who, found in results.items():
        best, bad = found["best"], found["first_failing"]
        nxt = "—"
        if bad is not None:
            why = f"p99 {bad['p99_ms']:,.0f} ms" if bad["errors"] == 0 else f"{bad['errors']} err"
            nxt = f"{bad['rate']:,.0f}/s: {why}"
        cells.append(
            (
                who,
                f"{best['rate']:,.0f} req/s"
                if best
                else f"< {min(t['rate'] for t in found['trials']):g} req/s",
                f"{best['p50_ms']:.1f}" if best else "—",
                f"{best['p99_ms']:.1f}" if best else "—",
                nxt,
            )
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    cells.insert(1, tuple("-" * w for w in widths))
    return ["  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip() for c in cells]
