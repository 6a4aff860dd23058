"""Team server benchmark: `ferry server` against `mlflow server`, clients over HTTP, in one run.

    python benchmarks/server.py [--quick] [--json]

Three servers, one after another, each on SQLite and a free port of 127.0.0.1: `ferry
server` (one worker, tokens on), `mlflow server` with its defaults (four uvicorn workers,
--serve-artifacts) and `mlflow server --workers 1`. The 1,000 runs searched are written to
each side's SQLite file before its servers start (through the default MLflow server that
would take minutes); the two MLflow servers share that file. Against each server a client
runs in a fresh interpreter (_server_ferry_worker.py, _server_mlflow_worker.py; MLflow
from benchmarks/.cache/mlflow-venv, made on first use) and reads back what it wrote:

- log_metric one call at a time, until the values are stored on the server (ferryml's call
  returns after a local journal append; its figure runs to the end of the run, whose flush
  stores them). Target: 1,000x the default MLflow server's rate.
- log_batch of 20,000 values in chunks of 1,000, until stored. Target: 20x.
- search of the 1,000 runs (10 params and 10 metrics each) with a metric filter, and
  ordered by a metric. Target: 10x.
- a 1 GiB file of random bytes as a run's artifact, uploaded and downloaded through the
  server, beside `cp` of the same file, in rounds where cp and the transfers face the same
  memory state: every output kept (each step writes into memory never used) and every
  output freed (each step writes into memory just freed), the cp's place rotating
  (_artifact_rounds.py). Target: each way at least half the speed of the cp in the same
  mode, both modes; medians of three rounds (kept: after an untimed one).
  The server's CPU time (utime+stime of its processes, /proc/PID/stat) for each upload and
  download is shown beside them.
- the server's peak memory (VmHWM of its largest process, from /proc). Target: ferryml
  under 200 MB.

The MLflow clients run log_metric and log_batch once (at MLflow's rate 2,000 calls take
minutes); ferryml's figures are medians of three. MB means 10^6 bytes. Every server is
started in a process group of its own and stopped after its workloads, even on failure.
Stdlib only.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data import make_big  # noqa: E402
from serving import HOST, Server, descendants, stop_all  # noqa: E402
from tracking import (  # noqa: E402
    FERRY_PY,
    MLFLOW_ENV,
    MLFLOW_PY,
    ensure_mlflow,
    fmt,
    log,
    print_table,
    run_worker,
)

FERRY_BIN = str(Path(FERRY_PY).parent / "ferry")
# The venv's `ferry` script, or the package run as a module where it is not installed (a
# checkout on PYTHONPATH).
FERRY_CMD = [FERRY_BIN] if Path(FERRY_BIN).exists() else [FERRY_PY, "-m", "ferryml"]
MOTO_BIN = str(Path(FERRY_PY).parent / "moto_server")
WORKLOADS = ("log_metric", "log_batch", "search", "artifact", "s3")
MLFLOW_BIN = str(Path(MLFLOW_PY).parent / "mlflow")
FULL = {"n_log_metric": 2000, "n_batch_values": 20000, "batch_chunk": 1000, "n_runs": 1000,
        "repeats": 3, "search_repeats": 5, "artifact_mib": 1024, "s3_mib": 256}  # fmt: skip
QUICK = {"n_log_metric": 200, "n_batch_values": 2000, "batch_chunk": 1000, "n_runs": 100,
         "repeats": 1, "search_repeats": 3, "artifact_mib": 64, "s3_mib": 16}  # fmt: skip
PEER_REPEATS = 1
START_LIMIT_S = 300  # mlflow server's four workers took over 120 s to answer at load 29
RSS_LIMIT_MB = 200
COPY_SHARE = 0.5  # of the local copy's speed, each way
# Keys of the three servers, in the order they run; the first MLflow one is the reference.
SIDES = {
    "ferryml": "ferry server",
    "mlflow": "mlflow server (default, 4 workers)",
    "mlflow1": "mlflow server --workers 1",
}
# key, label, unit, higher is better, target: ("x", n) ferryml n times the default MLflow
# server; ("copy", share, row) of the speed of the local copy in that row (measured alike);
# ("max", mb) an absolute ceiling
ROWS = [
    ("log_metric", "log_metric x{n_log_metric:,}, until stored", "calls/s", True, ("x", 1000)),
    ("log_metric_calls", "  the calls alone, until they return", "calls/s", True, None),
    ("log_batch", "log_batch {n_batch_values:,} values, until stored", "values/s", True,
     ("x", 20)),
    ("filter", "search {n_runs:,} runs: metrics.m0 > 0.5", "ms", False, ("x", 10)),
    ("order", "search {n_runs:,} runs: order by metrics.m1 DESC", "ms", False, ("x", 10)),
    ("upload", "upload a {artifact_mib:,} MiB artifact, outputs kept", "MB/s", True,
     ("copy", COPY_SHARE, "copy")),
    ("download", "download it, outputs kept", "MB/s", True, ("copy", COPY_SHARE, "copy")),
    ("copy", "  cp of the same file, outputs kept", "MB/s", True, None),
    ("upload_cpu", "  server CPU for the upload, outputs kept", "s", False, None),
    ("download_cpu", "  server CPU for the download, outputs kept", "s", False, None),
    ("upload_freed", "upload it, into memory just freed", "MB/s", True,
     ("copy", COPY_SHARE, "copy_freed")),
    ("download_freed", "download it, into memory just freed", "MB/s", True,
     ("copy", COPY_SHARE, "copy_freed")),
    ("copy_freed", "  cp of the same file, into memory just freed", "MB/s", True, None),
    ("upload_cpu_freed", "  server CPU for the upload, memory just freed", "s", False, None),
    ("download_cpu_freed", "  server CPU for the download, memory just freed", "s", False,
     None),
    ("rss_peak", "server peak RSS, largest process", "MB", False, ("max", RSS_LIMIT_MB)),
    ("rss_ready", "  server RSS when ready", "MB", False, None),
    ("start", "server start to first /health answer", "s", False, None),
]  # fmt: skip


class HttpServer(Server):
    """A server that is ready once it answers GET ``health``; stopped as serving.Server is."""

    def __init__(
        self,
        side: str,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        health: str = "/health",
    ):
        super().__init__(side, name, argv, env, str(cwd), health, {}, [])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> float:
        t0 = self.spawn()
        assert self.proc is not None
        while self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.base_url}{self.path}", timeout=5) as answer:
                    if answer.status == 200:
                        self.cold_start_s = time.perf_counter() - t0
                        log(f"  {self.name} answered after {self.cold_start_s:.2f} s")
                        return self.cold_start_s
            except OSError:
                pass
            if time.perf_counter() - t0 > START_LIMIT_S:
                raise RuntimeError(f"{self.name} did not answer in {START_LIMIT_S} s")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")

    def memory_mb(self) -> dict[str, float]:
        """Peak (VmHWM) and current (VmRSS) resident memory of the server's largest
        process, in MB: with several workers, the one that did the most."""
        assert self.proc is not None
        found = {"peak": 0.0, "now": 0.0}
        for pid in (self.proc.pid, *descendants(self.proc.pid)):
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            for key, field in (("peak", "VmHWM"), ("now", "VmRSS")):
                if field in status:  # "123456 kB"
                    kb = int(status[field].split()[0])
                    found[key] = max(found[key], kb * 1024 / 1e6)
        return found


def ferry_env(home: Path | str, **extra: str) -> dict[str, str]:
    """ferryml's settings for a process: empty values count as unset, so none of the
    caller's shell leaks in."""
    blank = dict.fromkeys(("FERRY_STORE", "FERRY_ARTIFACTS", "FERRY_TRACKING_URI"), "")
    return {**blank, "FERRY_HOME": str(home), **extra}


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return {**env, **ferry_env(home)}


def add_writer(home: Path) -> str:
    """A writer on the server's store; its token, which the command prints last."""
    argv = [*FERRY_CMD, "server", "user", "add", "bench", "--role", "writer"]
    out = subprocess.run(argv, env=server_env(home), capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def run_all(root: Path, cfg: dict[str, Any], sides: list[str]) -> dict[str, Any]:
    source = root / "artifact.bin"
    if "artifact" in cfg["only"]:
        log(f"writing {cfg['artifact_mib']} MiB of random bytes ...")
        make_big(source, cfg["artifact_mib"])
    ferry_home, mlflow_dir = root / "ferry-home", root / "mlflow"
    mlflow_dir.mkdir()
    db = mlflow_dir / "mlflow.db"
    n_runs = cfg["n_runs"] if "search" in cfg["only"] else 0
    populate = {**cfg, "phase": "populate", "n_runs": n_runs}
    log(f"writing the {populate['n_runs']} runs searched, straight to each side's SQLite file ...")
    seeded = {
        "ferryml": run_worker(FERRY_PY, "_server_ferry_worker.py", populate, ferry_env(ferry_home)),
        "mlflow": run_worker(
            MLFLOW_PY, "_server_mlflow_worker.py", {**populate, "db": str(db)}, MLFLOW_ENV
        )
        if {"mlflow", "mlflow1"} & set(sides)
        else {},
    }
    token = add_writer(ferry_home)
    mlflow_env = {**os.environ, **MLFLOW_ENV}
    mlflow_env["PATH"] = f"{Path(MLFLOW_PY).parent}:{os.environ['PATH']}"
    res: dict[str, Any] = {}
    for key, name in SIDES.items():
        if key not in sides:
            continue
        if key == "ferryml":
            argv = [*FERRY_CMD, "server", "--host", HOST, "--port", "{port}", *cfg["server_flags"]]
            server = HttpServer(key, name, argv, server_env(ferry_home), root)
            artifacts = ferry_home / "artifacts"
        else:
            artifacts = mlflow_dir / f"artifacts-{key}"
            argv = [MLFLOW_BIN, "server", "--backend-store-uri", f"sqlite:///{db}", "--host", HOST,
                    "--port", "{port}", "--artifacts-destination", str(artifacts)]  # fmt: skip
            if key == "mlflow1":
                argv += ["--workers", "1"]
            server = HttpServer(key, name, argv, mlflow_env, mlflow_dir)
        side = seeded["ferryml" if key == "ferryml" else "mlflow"]
        out: dict[str, Any] = {"filter_expected": side.get("filter_expected")}
        try:
            out["start_s"] = server.start()
            out["memory_ready"] = server.memory_mb()
            job = {**cfg, "phase": "client", "artifact": str(source), "url": server.base_url}
            job["server_pids"] = [server.proc.pid, *descendants(server.proc.pid)]
            log(f"running the client of {name} ...")
            if key == "ferryml":
                env = {"FERRY_TRACKING_URI": server.base_url, "FERRY_TOKEN": token}
                out.update(run_worker(FERRY_PY, "_server_ferry_worker.py", job,
                                      ferry_env("{tmp}", **env)))  # fmt: skip
            else:
                job["repeats"] = PEER_REPEATS
                out.update(run_worker(MLFLOW_PY, "_server_mlflow_worker.py", job, MLFLOW_ENV))
            out["memory"] = server.memory_mb()
        except RuntimeError as e:
            out["error"] = str(e)
            log(f"{name} failed: {e}")
        finally:
            server.stop()
            shutil.rmtree(artifacts, ignore_errors=True)  # a GiB a side
        res[key] = out
    return res


S3_KEYS = {"testing": "AWS_ACCESS_KEY_ID", "testing-secret": "AWS_SECRET_ACCESS_KEY"}


def run_s3(root: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """ferryml over a bucket of moto's S3 server: a file up and down through `ferry server`,
    which streams the blobs to and from the bucket, and through `ferry server
    --signed-urls`, whose clients move them straight to and from the bucket at URLs it
    signs (it then reads an upload back to check its digest)."""
    source = root / "s3.bin"
    log(f"writing {cfg['s3_mib']} MiB of random bytes for S3 ...")
    make_big(source, cfg["s3_mib"])
    moto = HttpServer("moto", "moto S3 server", [MOTO_BIN, "-H", HOST, "-p", "{port}"],
                      dict(os.environ), root, health="/")  # fmt: skip
    out: dict[str, Any] = {}
    try:
        moto.start()
        aws = {"AWS_ENDPOINT_URL": moto.base_url, "AWS_DEFAULT_REGION": "us-east-1",
               **{name: value for value, name in S3_KEYS.items()}}  # fmt: skip
        make_bucket = "import boto3; boto3.client('s3').create_bucket(Bucket='bench')"  # reads aws
        subprocess.run([FERRY_PY, "-c", make_bucket], env={**os.environ, **aws}, check=True)
        for key, flags in (("stream", []), ("signed", ["--signed-urls"])):
            home = root / f"s3-{key}"
            env = {**server_env(home), **aws, "FERRY_ARTIFACTS": f"s3://bench/{key}"}
            token = add_writer(home)
            argv = [*FERRY_CMD, "server", "--host", HOST, "--port", "{port}", *flags,
                    *cfg["server_flags"]]  # fmt: skip
            server = HttpServer(key, f"ferry server over S3 ({key})", argv, env, root)
            try:
                server.start()
                job = {**cfg, "phase": "client", "only": ["artifact"], "artifact": str(source),
                       "url": server.base_url, "repeats": 1,
                       "artifact_modes": ["kept"]}  # fmt: skip
                client = {"FERRY_TRACKING_URI": server.base_url, "FERRY_TOKEN": token}
                got = run_worker(FERRY_PY, "_server_ferry_worker.py", job,
                                 ferry_env("{tmp}", **client))  # fmt: skip
                got["memory"] = server.memory_mb()
                out[key] = got
            except RuntimeError as e:
                out[key] = {"error": str(e)}
            finally:
                server.stop()
    except RuntimeError as e:
        out["error"] = str(e)
    finally:
        moto.stop()
    return out


def print_s3(s3: dict[str, Any], cfg: dict[str, Any]) -> None:
    size_mb = cfg["s3_mib"] * (1 << 20) / 1e6
    table: list[tuple[str, ...]] = [("S3 (moto), ferryml", "upload MB/s", "download MB/s",
                                     "server peak MB", "same")]  # fmt: skip
    for key, label in (("stream", "through the server"), ("signed", "signed URLs")):
        got = s3.get(key, {})
        art = got.get("artifact")
        if art is None:
            table.append((label, "failed", got.get("error", s3.get("error", "?"))[:60], "", ""))
            continue
        kept = art["kept"]
        table.append((label, fmt(size_mb / kept["upload_s"]), fmt(size_mb / kept["download_s"]),
                      fmt(got["memory"]["peak"]), str(art["same"])))  # fmt: skip
    print()
    print(f"A {cfg['s3_mib']:,} MiB artifact over S3 (moto's server on 127.0.0.1):")
    print_table(table)


def figures(res: dict[str, Any], cfg: dict[str, Any]) -> dict[str, float]:
    """One side's figure per row key; keys missing where that side failed."""
    size_mb = cfg["artifact_mib"] * (1 << 20) / 1e6
    recipes = {
        "log_metric": lambda: cfg["n_log_metric"] / res["log_metric"]["total_s"],
        "log_metric_calls": lambda: cfg["n_log_metric"] / res["log_metric"]["loop_s"],
        "log_batch": lambda: cfg["n_batch_values"] / res["log_batch"]["s"],
        "filter": lambda: res["filter"]["s"] * 1e3,
        "order": lambda: res["order"]["s"] * 1e3,
        **{
            f"{step}{suffix}": partial(lambda s, m: size_mb / res["artifact"][m][s], s, mode)
            for mode, suffix in (("kept", ""), ("freed", "_freed"))
            for step, s in (("upload", "upload_s"), ("download", "download_s"), ("copy", "cp_s"))
        },
        **{
            f"{step}_cpu{suffix}": partial(
                lambda s, m: res["artifact"][m][s], f"{step}_cpu_s", mode
            )
            for mode, suffix in (("kept", ""), ("freed", "_freed"))
            for step in ("upload", "download")
        },
        "rss_peak": lambda: res["memory"]["peak"],
        "rss_ready": lambda: res["memory_ready"]["now"],
        "start": lambda: res["start_s"],
    }
    out = {}
    for key, recipe in recipes.items():
        try:
            out[key] = recipe()
        except (KeyError, TypeError, ZeroDivisionError):
            continue
    return out


def problems(res: dict[str, Any], cfg: dict[str, Any]) -> dict[str, str]:
    """Wrong answers, by row key: a fast wrong answer is no PASS."""
    found = {}
    for key in ("log_metric", "log_batch"):
        if res.get(key, {}).get("stored_ok") is False:
            found[key] = "values read back from the server differ"
    if "filter" in res and res["filter"]["count"] != res.get("filter_expected"):
        found["filter"] = f"{res['filter']['count']} runs, expected {res['filter_expected']}"
    order = res.get("order")
    if order and (order["count"] != cfg["n_runs"] or not order["sorted_ok"]):
        found["order"] = f"{order['count']} runs, sorted: {order['sorted_ok']}"
    if res.get("artifact", {}).get("same") is False:
        for key in ("upload", "download", "upload_freed", "download_freed"):
            found[key] = "a file downloaded differs"
    return found


def report(res: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    figs = {key: figures(res.get(key, {}), cfg) for key in SIDES}
    wrong = {key: problems(res.get(key, {}), cfg) for key in SIDES}
    rows = []
    for key, label, unit, higher, target in ROWS:
        values = {side: figs[side].get(key) for side in SIDES}
        f = values["ferryml"]
        ratios = {}
        for peer in ("mlflow", "mlflow1"):
            p = values[peer]
            ok = f is not None and p is not None and f > 0 and p > 0
            ratios[peer] = (f / p if higher else p / f) if ok else None
        shown, verdicts = "", {}
        if target is not None:
            kind, n = target[:2]
            if kind == "x":
                shown = f">={n:,}x"
                verdicts = {peer: None if r is None else r >= n for peer, r in ratios.items()}
            elif kind == "copy":
                copy = figs["ferryml"].get(target[2])
                shown = f">={n}x cp" + (f" ({n * copy:,.0f})" if copy else "")
                verdicts["mlflow"] = None if f is None or not copy else f >= n * copy
            else:
                shown = f"<{n} {unit}"
                verdicts["mlflow"] = None if f is None else f < n
        notes = [f"{side} WRONG: {why}" for side in SIDES if (why := wrong[side].get(key))]
        if notes:
            verdicts = dict.fromkeys(verdicts or ("mlflow",), False)
        status = {
            peer: "" if peer not in verdicts else
            "n/a" if verdicts[peer] is None else "PASS" if verdicts[peer] else "MISS"
            for peer in ("mlflow", "mlflow1")
        }  # fmt: skip
        rows.append({"key": key, "workload": label.format(**cfg), "unit": unit, **values,
                     "ratio": ratios["mlflow"], "ratio_1_worker": ratios["mlflow1"],
                     "target": shown, "status": status["mlflow"],
                     "status_1_worker": status["mlflow1"], "note": "; ".join(notes)})  # fmt: skip
    return rows


def times(r: float | None) -> str:
    return "—" if r is None else f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads to run, of {', '.join(WORKLOADS)}",
    )
    ap.add_argument(
        "--fsync",
        action="store_true",
        help="run ferry server at its default, --fsync (uploads synced), not --no-fsync",
    )
    ap.add_argument("--sides", default=",".join(SIDES),
                    help=f"comma-separated servers to run, of {', '.join(SIDES)}")  # fmt: skip
    args = ap.parse_args()
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = sorted(set(only) - set(WORKLOADS)) + sorted(set(sides) - set(SIDES))
    if unknown:
        ap.error(f"unknown workload or server: {', '.join(unknown)}")
    cfg = {**(QUICK if args.quick else FULL), "only": [w for w in only if w != "s3"],
           "server_flags": ["--fsync"] if args.fsync else ["--no-fsync"]}  # fmt: skip
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs atexit: servers stopped

    peers = bool(cfg["only"]) and bool({"mlflow", "mlflow1"} & set(sides))
    version = ensure_mlflow() if peers else "(not run)"
    t_run, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ferry-bench-server-") as name:
        try:
            res = run_all(Path(name), cfg, sides) if cfg["only"] else {}
            s3 = run_s3(Path(name), cfg) if "s3" in only else {}
        finally:
            stop_all()
    run_s, load_after = time.perf_counter() - t_run, os.getloadavg()[0]
    rows = report(res, cfg)

    if args.json:
        doc = {"config": cfg, "mlflow_version": version, "results": res, "rows": rows, "s3": s3,
               "run_s": run_s, "loadavg_1min": [load_before, load_after]}  # fmt: skip
        print(json.dumps(doc, indent=2))
        return
    print(
        f"ferryml {res.get('ferryml', {}).get('version', '?')} (ferry server "
        f"{' '.join(cfg['server_flags'])}, 1 worker) vs MLflow "
        f"{version} (mlflow server: default 4 workers, and --workers 1), SQLite, clients "
        f"over HTTP on 127.0.0.1; counts: {cfg}"
    )
    for key, name in SIDES.items():
        if "error" in res.get(key, {}):
            print(f"{name} FAILED: {res[key]['error']}")
    table: list[tuple[str, ...]] = [
        ("workload", "ferryml", "MLflow 4w", "ratio", "MLflow 1w", "ratio", "unit", "target",
         "result", "vs 1w")
    ]  # fmt: skip
    for r in rows:
        table.append((
            r["workload"], fmt(r["ferryml"]), fmt(r["mlflow"]), times(r["ratio"]),
            fmt(r["mlflow1"]), times(r["ratio_1_worker"]), r["unit"], r["target"],
            r["status"], r["status_1_worker"],
        ))  # fmt: skip
    print()
    print_table(table)
    print()
    for r in rows:
        if r["note"]:
            print(f"{r['workload'].strip()}: {r['note']}")
    for key in ("mlflow", "mlflow1"):
        for what in ("filter", "order"):
            if what in res.get(key, {}):
                print(f"{SIDES[key]}, {what}: the faster path, {res[key][what]['path']}")
    if s3:
        print_s3(s3, cfg)
    print(
        f"ratio: how many times ferryml is better; result: against the default MLflow "
        f"server (the targets of issue 12), vs 1w: against --workers 1. Whole run "
        f"{run_s:.0f} s; load average (1 min) {load_before:.1f} before, {load_after:.1f} "
        f"after, on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
