"""MLflow compatibility benchmark: `ferry import mlflow` of a large MLflow store, and the real
mlflow client's common calls against `mlflow server` and against `ferry server`, in one run.

    python benchmarks/mlflow_compat.py [--quick] [--skip-import] [--skip-api] [--floor]
                                       [--mlflow-workers N] [--ferry-workers N] [--json]

1. Import: an MLflow SQLite store of 1,000 finished runs with 10 params and 10 metrics of
   1,000 steps each (10 million values), made once by MLflow's venv and cached under
   benchmarks/.cache, imported by `ferry import mlflow sqlite:///...` into a fresh
   FERRY_HOME. Wall time and the CPU time of the process, values per second. Target: under
   30 s (issue 13).
2. The compat API: the same mlflow client script (_server_mlflow_worker.py, MLflow's venv)
   against `mlflow server` (SQLite, --serve-artifacts, MLflow's default of four workers
   unless --mlflow-workers) and against `ferry server` (SQLite, one worker unless
   --ferry-workers, a writer's token as MLFLOW_TRACKING_TOKEN): 2,000 log_metric calls,
   log_batch of 20,000 values in chunks of 1,000, a search over the 1,000 runs written
   beforehand straight to each side's SQLite file, and log_model of a scikit-learn model
   with its signature and input example, registered. Target: ferry server at least 3
   times faster on each row, every value stored (issue 13). The client calls one at a
   time, so a server's extra workers sit idle; each side runs as it ships by default.
3. --floor: the same client script, but for log_model, against _mlflow_canned_server.py, a
   bare ASGI app on ferry server's HTTP stack that stores nothing and replays ferry
   server's own answers to the searches (recorded from it just before): what the client
   itself costs. MLflow's time over the floor is the most any server could reach on a row.

The load average is printed beside the figures: on a shared machine they are as good as the
load lets them be. Stdlib only; reuses server.py's and tracking.py's helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from server import FERRY_BIN, HttpServer, add_writer, ferry_env, server_env  # noqa: E402
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

HOST = "127.0.0.1"
MLFLOW_BIN = str(Path(MLFLOW_PY).parent / "mlflow")
FULL = {"n_runs": 1000, "n_metrics": 10, "n_steps": 1000, "n_log_metric": 2000,
        "n_batch_values": 20000, "batch_chunk": 1000, "search_runs": 1000, "repeats": 3,
        "search_repeats": 5}  # fmt: skip
QUICK = {"n_runs": 100, "n_metrics": 10, "n_steps": 1000, "n_log_metric": 200,
         "n_batch_values": 2000, "batch_chunk": 1000, "search_runs": 100, "repeats": 1,
         "search_repeats": 3}  # fmt: skip
IMPORT_TARGET_S = 30
API_TARGET_X = 3
WORKLOADS = ["log_metric", "log_batch", "search", "log_model"]
API_ROWS = [  # key in the worker's output, field, label
    ("log_metric", "total_s", "log_metric x {n_log_metric}, s"),
    ("log_batch", "s", "log_batch of {n_batch_values} values, s"),
    ("filter", "s", "search {search_runs} runs, metric filter, s"),
    ("order", "s", "search {search_runs} runs, ordered by a metric, s"),
    ("log_model", "s", "log_model + register_model, s"),
]


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def source_db(cfg: dict[str, Any]) -> Path:
    """The MLflow store to import, made once per size (minutes: 10 million rows)."""
    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    db = cache / f"mlflow-import-{cfg['n_runs']}x{cfg['n_metrics']}x{cfg['n_steps']}.db"
    if not db.exists():
        log(f"making {db.name} with MLflow's schema (once) ...")
        partial = db.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        out = run_worker(MLFLOW_PY, "_mlflow_import_source.py", {**cfg, "db": str(partial)},
                         MLFLOW_ENV)  # fmt: skip
        if "error" in out:
            sys.exit(f"could not make the MLflow store: {out['error']}")
        partial.rename(db)
    return db


def run_import(cfg: dict[str, Any]) -> dict[str, Any]:
    db = source_db(cfg)
    values = cfg["n_runs"] * cfg["n_metrics"] * cfg["n_steps"]
    with tempfile.TemporaryDirectory(prefix="ferry-import-") as home:
        env = {**server_env(Path(home)), "PATH": os.environ["PATH"]}
        argv = [FERRY_BIN, "import", "mlflow", f"sqlite:///{db}", "--json"]
        log(f"ferry import mlflow of {cfg['n_runs']} runs, {values:,} values (load {load()}) ...")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    report = json.loads(done.stdout)
    counts = report["counts"]
    ok = counts.get("metric values") == values and report["mismatches"] == []
    log(f"  imported in {wall:.1f} s wall, {cpu:.1f} s CPU (load {load()})")
    return {"wall_s": wall, "cpu_s": cpu, "values": values, "runs": counts.get("runs"),
            "stored_ok": ok, "load": load()}  # fmt: skip


def run_api(cfg: dict[str, Any], root: Path, args: argparse.Namespace) -> dict[str, Any]:
    only = WORKLOADS
    ferry_home, mlflow_dir = root / "ferry-home", root / "mlflow"
    mlflow_dir.mkdir()
    db = mlflow_dir / "mlflow.db"
    populate = {**cfg, "phase": "populate", "n_runs": cfg["search_runs"], "only": only}
    log(f"writing the {cfg['search_runs']} runs searched, straight to each side's SQLite file ...")
    run_worker(FERRY_PY, "_server_ferry_worker.py", populate, ferry_env(ferry_home))
    run_worker(MLFLOW_PY, "_server_mlflow_worker.py", {**populate, "db": str(db)}, MLFLOW_ENV)
    token = add_writer(ferry_home)
    mlflow_env = {**os.environ, **MLFLOW_ENV}
    mlflow_env["PATH"] = f"{Path(MLFLOW_PY).parent}:{os.environ['PATH']}"
    res: dict[str, Any] = {}
    sides = {
        "mlflow": HttpServer("mlflow", "mlflow server", [MLFLOW_BIN, "server",
                             "--backend-store-uri", f"sqlite:///{db}", "--host", HOST, "--port",
                             "{port}", "--artifacts-destination", str(mlflow_dir / "artifacts"),
                             "--workers", str(args.mlflow_workers)], mlflow_env, mlflow_dir),
        "ferryml": HttpServer("ferryml", "ferry server", [FERRY_BIN, "server", "--host", HOST,
                              "--port", "{port}", "--workers", str(args.ferry_workers)],
                              server_env(ferry_home), root),
    }  # fmt: skip
    for key, server in sides.items():
        out: dict[str, Any] = {}
        try:
            server.start()
            job = {**cfg, "phase": "client", "url": server.base_url, "only": only}
            env = dict(MLFLOW_ENV)
            if key == "ferryml":
                env["MLFLOW_TRACKING_TOKEN"] = token
            else:
                job["repeats"] = 1  # at MLflow's rate 2,000 calls take minutes
            log(f"running the mlflow client against {server.name} (load {load()}) ...")
            out.update(run_worker(MLFLOW_PY, "_server_mlflow_worker.py", job, env))
            out["load"] = load()
            if key == "ferryml" and args.floor:
                res["floor"] = run_floor(cfg, root, server.base_url, token)
        except RuntimeError as e:
            out["error"] = str(e)
            log(f"{server.name} failed: {e}")
        finally:
            server.stop()
        res[key] = out
    return res


def run_floor(cfg: dict[str, Any], root: Path, source: str, token: str) -> dict[str, Any]:
    """The client against the canned server, which replays ``source``'s search answers."""
    env = {**os.environ, "MLFLOW_TRACKING_TOKEN": token}
    canned = HttpServer("floor", "canned server", [FERRY_PY, str(HERE / "_mlflow_canned_server.py"),
                        "{port}", source], env, root)  # fmt: skip
    out: dict[str, Any] = {}
    try:
        canned.start()
        job = {**cfg, "phase": "client", "url": canned.base_url,
               "only": ["log_metric", "log_batch", "search"]}  # fmt: skip
        log(f"running the mlflow client against the canned server (load {load()}) ...")
        out.update(run_worker(MLFLOW_PY, "_server_mlflow_worker.py", job, dict(MLFLOW_ENV)))
        out["load"] = load()
    except RuntimeError as e:
        out["error"] = str(e)
        log(f"the canned server failed: {e}")
    finally:
        canned.stop()
    return out


def secs(v: float | None) -> str:
    """Seconds with two decimals below 10 (the searches take tenths)."""
    return f"{v:.2f}" if v is not None and v < 10 else fmt(v)


def api_figure(side: dict[str, Any], key: str, field: str) -> float | None:
    value = side.get(key)
    return value.get(field) if isinstance(value, dict) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the client against a canned server (its own cost)",
    )
    parser.add_argument("--mlflow-workers", type=int, default=4, help="mlflow server's workers")
    parser.add_argument("--ferry-workers", type=int, default=1, help="ferry server's workers")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    version = ensure_mlflow()
    results: dict[str, Any] = {"mlflow": version, "load_start": load()}
    if not args.skip_import:
        results["import"] = run_import(cfg)
    if not args.skip_api:
        root = Path(tempfile.mkdtemp(prefix="ferry-compat-"))
        try:
            results["api"] = run_api(cfg, root, args)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    results["load_end"] = load()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"\nMLflow compatibility, mlflow {version}, load average {results['load_start']} at "
          f"the start and {results['load_end']} at the end (1, 5, 15 min)\n")  # fmt: skip
    if "import" in results:
        r = results["import"]
        if "error" in r:
            print(f"import failed: {r['error']}")
        else:
            verdict = "met" if r["wall_s"] < IMPORT_TARGET_S else "missed"
            print_table([
                ("ferry import mlflow", "wall s", "CPU s", "values/s", "stored", "target"),
                (f"{r['runs']} runs, {r['values']:,} values", fmt(r["wall_s"]), fmt(r["cpu_s"]),
                 f"{r['values'] / r['wall_s']:,.0f}", str(r["stored_ok"]),
                 f"< {IMPORT_TARGET_S} s: {verdict}"),
            ])  # fmt: skip
            print()
    if "api" in results:
        api = results["api"]
        mlflow, ferry, floor = api.get("mlflow", {}), api.get("ferryml", {}), api.get("floor")
        head = [f"mlflow server ({args.mlflow_workers} workers)",
                f"ferry server ({args.ferry_workers})", "ratio", "target"]  # fmt: skip
        if floor is not None:
            head += ["floor", "most possible"]
        table = [("mlflow client against", *head)]
        for key, field, label in API_ROWS:
            m, f = api_figure(mlflow, key, field), api_figure(ferry, key, field)
            ratio = m / f if m and f else None
            verdict = "-" if ratio is None else ("met" if ratio >= API_TARGET_X else "missed")
            row = [label.format(**cfg), secs(m), secs(f), f"{fmt(ratio)}x" if ratio else "-",
                   f">= {API_TARGET_X}x: {verdict}"]  # fmt: skip
            if floor is not None:
                c = api_figure(floor, key, field)
                row += [secs(c), f"{fmt(m / c)}x" if m and c else "-"]
            table.append(tuple(row))
        print_table(table)
        for name, side in (("mlflow server", mlflow), ("ferry server", ferry)):
            bad = [k for k, _, _ in API_ROWS if isinstance(side.get(k), dict)
                   and side[k].get("stored_ok") is False]  # fmt: skip
            if bad or "error" in side:
                print(f"{name}: errors or values not stored: {bad} {side.get('error', '')}")


if __name__ == "__main__":
    main()
