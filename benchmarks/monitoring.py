"""Drift benchmark: ferryml's detect_drift against Evidently's DataDriftPreset, in one run.

    python benchmarks/monitoring.py [--rows 100000 1000000] [--repeats 3] [--quick] [--json]

Data: 25 columns (20 numeric: normal, integer, exponential, normal with 5% NaN; 5
categorical: str columns with 4, 20, 100 and 1,000 values and a bool), a reference and a
current frame of the same size drawn with different seeds; in the current frame 5 columns
move (normal_0 +0.5 sd, int_0's range +30%, exp_0 scale x1.5, nan_0 sd x1.5, cat_4's
weights). Both frames are written to Parquet once per size; each measurement runs in a fresh
subprocess that reads them (not timed), then times the work:

- ferryml, profile: ``profile_frame(reference)``, done once when a model is registered;
  reported, not counted as drift.
- ferryml, drift from the profile: ``detect_drift(profile, current)``, the profile read from
  its JSON; its HTML report is timed apart.
- ferryml, both raw: ``detect_drift(reference, current)`` (exact scipy statistics).
- Evidently 0.7.23 (own venv, benchmarks/.cache/evidently-venv, ``pandas<3``; made on first
  use): ``Report([DataDriftPreset()]).run(current, reference)`` on Datasets with an explicit
  DataDefinition; building the Datasets is timed apart. The ratio uses run() alone.

Time: median of the repeats inside the subprocess (Evidently at 1M rows: one run).
Memory: the subprocess's peak resident set (``ru_maxrss``) and its growth over the peak
after reading the data (0 when the work stayed below the Parquet reader's own peak); for
ferryml also tracemalloc's peak of what one more (untimed) call allocates, numpy arrays
included (not run for Evidently, whose Python-heavy run it would slow many times). Temp
files are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".cache" / "evidently-venv"
EVIDENTLY_PY = str(VENV / "bin" / "python")
EVIDENTLY_PIN = "0.7.23"  # the version PEERS.md measured
TARGET = 30  # ferryml's drift from the profile: at least this many times faster at 1M rows
PEERS_S = {100_000: 9.7, 1_000_000: 162.0}

NUMERIC = (
    [f"normal_{i}" for i in range(8)]
    + [f"int_{i}" for i in range(4)]
    + [f"exp_{i}" for i in range(4)]
    + [f"nan_{i}" for i in range(4)]
)
CATEGORICAL = ["cat_4", "cat_20", "cat_100", "cat_1k", "flag"]
SHIFTED = ["normal_0", "int_0", "exp_0", "nan_0", "cat_4"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- data (repo venv)


def make_frame(rows: int, seed: int, shifted: bool) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    s = 1.0 if shifted else 0.0
    columns: dict[str, object] = {}
    for i in range(8):
        columns[f"normal_{i}"] = rng.normal(i + (0.5 * (1 + i) * s if i == 0 else 0), 1 + i, rows)
    for i in range(4):
        high = 10 ** (i + 2)
        columns[f"int_{i}"] = rng.integers(0, int(high * 1.3) if s and i == 0 else high, rows)
    for i in range(4):
        columns[f"exp_{i}"] = rng.exponential((1 + i) * (1.5 if s and i == 0 else 1), rows)
    for i in range(4):
        x = rng.normal(0, 1.5 if s and i == 0 else 1, rows)
        x[rng.random(rows) < 0.05] = np.nan
        columns[f"nan_{i}"] = x
    for name, distinct in (("cat_4", 4), ("cat_20", 20), ("cat_100", 100), ("cat_1k", 1000)):
        labels = np.array([f"{name}_{j}" for j in range(distinct)], dtype=object)
        weights = np.arange(1, distinct + 1, dtype=float)
        if s and name == "cat_4":
            weights = weights[::-1]
        picks = rng.choice(distinct, rows, p=weights / weights.sum())
        columns[name] = pd.Series(labels[picks], dtype="str")
    columns["flag"] = rng.random(rows) < 0.3
    return pd.DataFrame(columns)


def write_data(folder: Path, rows: int) -> None:
    make_frame(rows, 1, False).to_parquet(folder / "reference.parquet")
    make_frame(rows, 2, True).to_parquet(folder / "current.parquet")


# ---------------------------------------------------------------- workers (subprocesses)


def timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def traced_mb(fn: Any) -> float:
    """Peak of what one more call allocates, as tracemalloc sees it (numpy included)."""
    import tracemalloc

    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def worker_ferry(mode: str, folder: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd

    from ferryml.data.profile import Profile, profile_frame
    from ferryml.monitoring import detect_drift

    out: dict[str, Any] = {}
    if mode == "profile":
        ref = pd.read_parquet(folder / "reference.parquet")
        out["after_load_mb"] = peak_mb()
        seconds, profile = timed(lambda: profile_frame(ref), repeats)
        out["traced_mb"] = traced_mb(lambda: profile_frame(ref))
        text = json.dumps(profile.to_dict())
        (folder / "profile.json").write_text(text)
        out["profile_json_kb"] = len(text) / 1024
    elif mode == "drift":
        cur = pd.read_parquet(folder / "current.parquet")
        profile = Profile.from_dict(json.loads((folder / "profile.json").read_text()))
        out["after_load_mb"] = peak_mb()
        seconds, report = timed(lambda: detect_drift(profile, cur), repeats)
        out["traced_mb"] = traced_mb(lambda: detect_drift(profile, cur))
        start = time.perf_counter()
        html = report.to_html()
        out["html_s"] = time.perf_counter() - start
        out["html_kb"] = len(html.encode()) / 1024
        out["drifted"] = list(report.drifted_columns)
    else:
        ref = pd.read_parquet(folder / "reference.parquet")
        cur = pd.read_parquet(folder / "current.parquet")
        out["after_load_mb"] = peak_mb()
        seconds, report = timed(lambda: detect_drift(ref, cur), repeats)
        out["traced_mb"] = traced_mb(lambda: detect_drift(ref, cur))
        out["drifted"] = list(report.drifted_columns)
    out.update(seconds=seconds, peak_mb=peak_mb())
    return out


def worker_evidently(folder: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(folder / "reference.parquet")
    cur = pd.read_parquet(folder / "current.parquet")
    after_load = peak_mb()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    seconds, datasets, snapshot = [], [], None
    for _ in range(repeats):
        start = time.perf_counter()
        current = Dataset.from_pandas(cur, data_definition=definition)
        reference = Dataset.from_pandas(ref, data_definition=definition)
        built = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current, reference)
        seconds.append(time.perf_counter() - built)
        datasets.append(built - start)
    drifted = []
    assert snapshot is not None
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold = metric["value"], config["threshold"]
        is_distance = "distance" in config["method"].lower() or "psi" in config["method"].lower()
        if (value >= threshold) if is_distance else (value < threshold):
            drifted.append(config["column"])
    return {
        "seconds": seconds,
        "datasets_s": datasets,
        "after_load_mb": after_load,
        "peak_mb": peak_mb(),
        "drifted": drifted,
    }


# ---------------------------------------------------------------- driver


def ensure_evidently() -> str:
    marker = VENV / ".installed"  # written last, so a half-made venv is made again
    if not marker.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        log(f"creating {VENV} (once) ...")
        venv.create(VENV, with_pip=True)
        pip = [EVIDENTLY_PY, "-m", "pip", "install", "--quiet", f"evidently=={EVIDENTLY_PIN}"]
        if subprocess.run([*pip, "pandas<3"], check=False, stdout=sys.stderr).returncode:
            sys.exit(f"could not install evidently into {VENV}")
        code = "import importlib.metadata as m; print(m.version('evidently'))"
        out = subprocess.run([EVIDENTLY_PY, "-c", code], capture_output=True, text=True, check=True)
        marker.write_text(out.stdout.strip())
    return marker.read_text().strip()


def run_worker(python: str, who: str, folder: Path, repeats: int) -> dict[str, Any]:
    cmd = [python, __file__, "--worker", who, "--folder", str(folder), "--repeats", str(repeats)]
    env = (
        {**os.environ, "PYTHONPATH": str(HERE.parent / "src")} if python == sys.executable else None
    )
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if p.returncode:
        sys.exit(f"{who} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def summary(r: dict[str, Any]) -> dict[str, Any]:
    out = {
        "s": round(statistics.median(r["seconds"]), 3),
        "s_all": [round(s, 3) for s in r["seconds"]],
        "peak_mb": round(r["peak_mb"], 1),
        "growth_mb": round(r["peak_mb"] - r["after_load_mb"], 1),
    }
    rest = {k: v for k, v in r.items() if k not in ("seconds", "peak_mb", "after_load_mb")}
    out.update({k: round(v, 3) if isinstance(v, float) else v for k, v in rest.items()})
    if "datasets_s" in r:
        out["datasets_s"] = round(statistics.median(r["datasets_s"]), 3)
    return out


def measure(rows: int, repeats: int, version: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ferry-bench-drift-") as tmp:
        folder = Path(tmp)
        log(f"{rows:,} rows: writing data ...")
        write_data(folder, rows)
        res: dict[str, Any] = {"rows": rows}
        for who in ("profile", "drift", "raw"):
            log(f"{rows:,} rows: ferryml {who} ...")
            res[f"ferry_{who}"] = summary(run_worker(sys.executable, who, folder, repeats))
        ev_repeats = 1 if rows >= 500_000 else repeats
        log(f"{rows:,} rows: Evidently {version} ({ev_repeats} run(s)) ...")
        res["evidently"] = summary(run_worker(EVIDENTLY_PY, "evidently", folder, ev_repeats))
    res["ratio_drift"] = round(res["evidently"]["s"] / res["ferry_drift"]["s"], 1)
    res["ratio_raw"] = round(res["evidently"]["s"] / res["ferry_raw"]["s"], 1)
    return res


def report(results: list[dict[str, Any]], version: str) -> None:
    print(f"Data drift, 25 columns (20 numeric, 5 categorical); ferryml vs Evidently {version}")
    for r in results:
        f, d, w, e = r["ferry_profile"], r["ferry_drift"], r["ferry_raw"], r["evidently"]
        print(f"\n{r['rows']:,} rows a side (PEERS: Evidently {PEERS_S.get(r['rows'], '?')} s)")
        json_kb, html_kb, html_s = f["profile_json_kb"], d["html_kb"], d["html_s"]
        rows = [
            ("ferryml: profile the reference (once)", f, f"profile JSON {json_kb:.0f} KB"),
            ("ferryml: drift, profile vs current", d, f"HTML {html_kb:.0f} KB in {html_s:.2f} s"),
            ("ferryml: drift, both raw (exact)", w, ""),
            ("Evidently DataDriftPreset run()", e, f"+ Datasets {e['datasets_s']:.2f} s"),
        ]
        for label, x, extra in rows:
            traced = f", allocated {x['traced_mb']:.1f} MB" if "traced_mb" in x else ""
            print(
                f"  {label:<40}{x['s']:>9.3f} s   peak {x['peak_mb']:>6.0f} MB "
                f"(+{x['growth_mb']:.0f} MB over the loaded data{traced})   {extra}"
            )
        target = f" (target >= {TARGET}x)" if r["rows"] >= 1_000_000 else ""
        print(f"  Evidently / ferryml drift from profile: {r['ratio_drift']}x{target}")
        print(f"  Evidently / ferryml both raw:           {r['ratio_raw']}x")
        print(f"  flagged by ferryml from the profile: {sorted(d['drifted'])}")
        print(f"  flagged by ferryml, both raw:        {sorted(w['drifted'])}")
        print(f"  flagged by Evidently:                {sorted(e['drifted'])}")
        print(f"  shifted in the data:                 {sorted(SHIFTED)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, one repeat")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = Path(args.folder)
        if args.worker == "evidently":
            result = worker_evidently(folder, args.repeats)
        else:
            result = worker_ferry(args.worker, folder, args.repeats)
        print(json.dumps(result))
        return
    if args.quick:
        args.rows, args.repeats = [20_000], 1
    version = ensure_evidently()
    results = [measure(rows, args.repeats, version) for rows in args.rows]
    if args.json:
        print(json.dumps({"evidently": version, "results": results}))
    else:
        report(results, version)


if __name__ == "__main__":
    main()
