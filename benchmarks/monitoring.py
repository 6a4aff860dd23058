"""Drift benchmark: ferryml's detect_drift against Evidently's DataDriftPreset, in one run.

    python benchmarks/monitoring.py [--rows 100000 1000000] [--wide] [--repeats 3]
                                    [--evidently-timeout 15] [--quick] [--json]

Data, 25 columns (``--rows``, one case per size): 20 numeric (normal, integer, exponential,
normal with 5% NaN) and 5 categorical (str columns with 4, 20, 100 and 1,000 values and a
bool), a reference and a current frame of the same size drawn with different seeds; in the
current frame 5 columns move (normal_0 +0.5 sd, int_0's range +30%, exp_0 scale x1.5, nan_0
sd x1.5, cat_4's weights). ``--wide`` adds 100,000 rows x 1,000 columns (``--rows`` with no
value: that case alone): blocks of 20 columns, 19 numeric of one of the four kinds and one
categorical of one of the five; the first numeric column of every block moves, and the
categorical one of every fifth block (a 4-value column): 60 columns move. Both frames are
written to Parquet once per case; each measurement runs in a fresh subprocess that reads
them (not timed), then times the work:

- ferryml, profile: ``profile_frame(reference)``, done once when a model is registered;
  reported, not counted as drift.
- ferryml, drift from the profile: ``detect_drift(profile, current)``, the profile read from
  its JSON; its HTML report is timed apart.
- ferryml, both raw: ``detect_drift(reference, current)`` (exact scipy statistics).
- scipy direct: per column, the test ferryml picks (drift.py: above 1,000 reference values
  ``wasserstein`` for numeric and ``jensenshannon`` for categorical columns, else ``ks`` and
  ``chisquare``) called straight on the raw columns at ferryml's thresholds:
  ``stats.wasserstein_distance`` over the reference's population std (floored at 0.001),
  ``distance.jensenshannon`` over the two sides' ``value_counts``, ``stats.ks_2samp``,
  ``stats.chi2_contingency`` (ferryml's chi-square is that test of homogeneity, not
  ``stats.chisquare``); NaN dropped first. The floor ferryml is measured against.
- Evidently 0.7.23 (own venv, benchmarks/.cache/evidently-venv, ``pandas<3``; made on first
  use): ``Report([DataDriftPreset()]).run(current, reference)`` on Datasets with an explicit
  DataDefinition; building the Datasets is timed apart. The ratio uses run() alone. Killed
  when one run() passes ``--evidently-timeout`` minutes (or above ``--evidently-max-gb``
  resident): then the ratios are lower bounds and its peak is the one at the kill.

Time: median of the repeats inside the subprocess, as many for every side, Evidently too.
Memory: the subprocess's peak resident set (``ru_maxrss``; ``VmHWM`` for a killed one) and its
growth over the peak after reading the data (0 when the work stayed below the Parquet reader's
own peak); for ferryml and scipy also tracemalloc's peak of what one more (untimed) call
allocates, numpy arrays included (not run for Evidently, whose Python-heavy run it would slow
many times). Flagged columns: each side's set, and the columns they disagree on. The summary
checks the monitoring issue's targets (set for 1M rows x 25 columns) for every case: ferryml
at least 30x faster than Evidently's run(), at most a third of its peak memory, faster than
scipy direct, and the same columns flagged. Temp files are removed.
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
TARGET = 30  # ferryml: at least this many times faster than Evidently at 1M rows
MEMORY_SHARE = 1 / 3  # ferryml: at most this share of Evidently's peak memory
PEERS_S = {100_000: 9.7, 1_000_000: 162.0}
PEERS_SCIPY_S = {1_000_000: 6.0}  # "scipy per-column drift tests on 1M rows"
WIDE_ROWS, WIDE_COLUMNS = 100_000, 1_000

Column = tuple[str, str, int, bool]  # name, kind, parameter, moves in the current frame
NUMERIC_KINDS = ("normal", "int", "exp", "nan")
CATEGORICAL_KINDS = (("cat", 4), ("cat", 20), ("cat", 100), ("cat", 1000), ("flag", 2))
NARROW: list[Column] = [
    *((f"normal_{i}", "normal", i, i == 0) for i in range(8)),
    *((f"{kind}_{i}", kind, i, i == 0) for kind in NUMERIC_KINDS[1:] for i in range(4)),
    ("cat_4", "cat", 4, True),
    ("cat_20", "cat", 20, False),
    ("cat_100", "cat", 100, False),
    ("cat_1k", "cat", 1000, False),
    ("flag", "flag", 2, False),
]


def wide_layout(width: int = WIDE_COLUMNS) -> list[Column]:
    columns: list[Column] = []
    for j in range(width):
        block = j // 20
        if j % 20 == 19:
            kind, distinct = CATEGORICAL_KINDS[block % 5]
            columns.append((f"c{j:04d}_{kind}{distinct}", kind, distinct, block % 5 == 0))
        else:
            kind = NUMERIC_KINDS[block % 4]
            param = j % (8 if kind == "normal" else 4)
            columns.append((f"c{j:04d}_{kind}{param}", kind, param, j % 20 == 0))
    return columns


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- data (repo venv)


def make_frame(layout: list[Column], rows: int, seed: int, shifted: bool) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for name, kind, p, moves in layout:
        m = shifted and moves
        if kind == "normal":
            columns[name] = rng.normal(p + (0.5 * (1 + p) if m else 0), 1 + p, rows)
        elif kind == "int":
            high = 10 ** (p + 2)
            columns[name] = rng.integers(0, int(high * 1.3) if m else high, rows)
        elif kind == "exp":
            columns[name] = rng.exponential((1 + p) * (1.5 if m else 1), rows)
        elif kind == "nan":
            x = rng.normal(0, 1.5 if m else 1, rows)
            x[rng.random(rows) < 0.05] = np.nan
            columns[name] = x
        elif kind == "cat":
            labels = np.array([f"{name}_{j}" for j in range(p)], dtype=object)
            weights = np.arange(1, p + 1, dtype=float)
            if m:
                weights = weights[::-1]
            picks = rng.choice(p, rows, p=weights / weights.sum())
            columns[name] = pd.Series(labels[picks], dtype="str")
        else:
            columns[name] = rng.random(rows) < 0.3
    return pd.DataFrame(columns)


def write_data(folder: Path, layout: list[Column], rows: int) -> None:
    make_frame(layout, rows, 1, False).to_parquet(folder / "reference.parquet")
    make_frame(layout, rows, 2, True).to_parquet(folder / "current.parquet")
    kinds = {
        "numeric": [name for name, kind, _, _ in layout if kind in NUMERIC_KINDS],
        "categorical": [name for name, kind, _, _ in layout if kind not in NUMERIC_KINDS],
        "shifted": [name for name, _, _, moves in layout if moves],
    }
    (folder / "layout.json").write_text(json.dumps(kinds))


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


def worker_scipy(folder: Path, repeats: int) -> dict[str, Any]:
    """ferryml's default test per column, straight from scipy on the raw columns."""
    import numpy as np
    import pandas as pd
    from scipy import stats
    from scipy.spatial import distance

    from ferryml.monitoring._column_drift import DEFAULT_THRESHOLDS, SMALL_SAMPLE

    numeric = set(json.loads((folder / "layout.json").read_text())["numeric"])
    ref = pd.read_parquet(folder / "reference.parquet")
    cur = pd.read_parquet(folder / "current.parquet")
    after_load = peak_mb()
    limit = DEFAULT_THRESHOLDS

    def drifts(name: str) -> bool:
        r, c = ref[name], cur[name]
        if name in numeric:
            x = r.to_numpy(dtype=np.float64, na_value=np.nan)
            y = c.to_numpy(dtype=np.float64, na_value=np.nan)
            x, y = x[np.isfinite(x)], y[np.isfinite(y)]
            if x.size <= SMALL_SAMPLE:
                return bool(stats.ks_2samp(x, y).pvalue < limit["ks"])
            d = stats.wasserstein_distance(x, y) / max(float(np.std(x)), 0.001)
            return bool(d >= limit["wasserstein"])
        table = pd.concat([r.value_counts(), c.value_counts()], axis=1).fillna(0)
        counts = table.to_numpy(dtype=np.float64).T
        if counts[0].sum() <= SMALL_SAMPLE:
            result = stats.chi2_contingency(counts, correction=False)
            return bool(result.pvalue < limit["chisquare"])
        return bool(distance.jensenshannon(counts[0], counts[1]) >= limit["jensenshannon"])

    def run() -> list[str]:
        return [str(name) for name in ref.columns if drifts(name)]

    seconds, drifted = timed(run, repeats)
    traced = traced_mb(run)
    return {
        "seconds": seconds,
        "after_load_mb": after_load,
        "traced_mb": traced,
        "peak_mb": peak_mb(),
        "drifted": drifted,
    }


def worker_evidently(folder: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kinds = json.loads((folder / "layout.json").read_text())
    ref = pd.read_parquet(folder / "reference.parquet")
    cur = pd.read_parquet(folder / "current.parquet")
    after_load = peak_mb()
    definition = DataDefinition(
        numerical_columns=kinds["numeric"], categorical_columns=kinds["categorical"]
    )
    seconds, datasets, snapshot = [], [], None
    for _ in range(repeats):
        start = time.perf_counter()
        current = Dataset.from_pandas(cur, data_definition=definition)
        reference = Dataset.from_pandas(ref, data_definition=definition)
        built = time.perf_counter()
        log(f"run() starts at {time.time()}")  # for the driver, should it kill this run
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


def proc_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident) and VmRSS of a live process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024  # kB
    return out


def run_worker(
    python: str,
    who: str,
    folder: Path,
    repeats: int,
    timeout_s: float | None = None,
    max_mb: float | None = None,
) -> dict[str, Any]:
    """The worker's JSON; killed when one run() passes timeout_s (the whole worker, if it
    marks no run) or above max_mb resident: {"killed": why, ...}."""
    cmd = [python, __file__, "--worker", who, "--folder", str(folder), "--repeats", str(repeats)]
    env = (
        {**os.environ, "PYTHONPATH": str(HERE.parent / "src")} if python == sys.executable else None
    )
    out_path, err_path = folder / f"{who}.out", folder / f"{who}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        start, killed = time.monotonic(), ""
        while p.poll() is None:
            time.sleep(0.5)
            mem = proc_mb(p.pid) if (timeout_s or max_mb) else {}
            if timeout_s and _running_s(err_path, time.monotonic() - start) > timeout_s:
                killed = f"did not finish in {timeout_s / 60:g} min"
            elif max_mb and mem.get("VmRSS", 0) > max_mb:
                killed = f"killed above {max_mb / 1024:g} GB resident"
            if killed:
                p.kill()  # our own child, by its handle
                p.wait()
                starts = [ln for ln in err_path.read_text().splitlines() if "run() starts" in ln]
                since = float(starts[-1].split()[-1]) if starts else time.time()
                return {
                    "killed": killed,
                    "after_s": round(time.monotonic() - start, 1),
                    "run_s": round(time.time() - since, 1),  # inside run(), a lower bound
                    "peak_mb": round(mem.get("VmHWM", 0.0), 1),
                    "rss_mb": round(mem.get("VmRSS", 0.0), 1),
                }
    if p.returncode:
        sys.exit(f"{who} failed:\n{err_path.read_text()[-3000:]}")
    return json.loads(out_path.read_text().strip().splitlines()[-1])


def _running_s(err_path: Path, worker_s: float) -> float:
    """Seconds since the worker's last run() started, or since it started."""
    starts = [ln for ln in err_path.read_text().splitlines() if "run() starts" in ln]
    return time.time() - float(starts[-1].split()[-1]) if starts else worker_s


def summary(r: dict[str, Any]) -> dict[str, Any]:
    if "killed" in r:
        return r
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


SIDES = {  # result key: label in the flag comparison
    "ferry_drift": "ferryml profile",
    "ferry_raw": "ferryml raw",
    "scipy": "scipy direct",
    "evidently": "Evidently",
}


def measure(
    layout: list[Column], rows: int, args: argparse.Namespace, version: str
) -> dict[str, Any]:
    width = len(layout)
    n_num = sum(kind in NUMERIC_KINDS for _, kind, _, _ in layout)
    name = f"{rows:,} rows x {width:,} columns"
    res: dict[str, Any] = {"rows": rows, "columns": width, "numeric": n_num}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-drift-") as tmp:
        folder = Path(tmp)
        log(f"{name}: writing data ...")
        write_data(folder, layout, rows)
        res["shifted"] = json.loads((folder / "layout.json").read_text())["shifted"]
        for who in ("profile", "drift", "raw"):
            log(f"{name}: ferryml {who} ...")
            res[f"ferry_{who}"] = summary(run_worker(sys.executable, who, folder, args.repeats))
        log(f"{name}: scipy direct ...")
        res["scipy"] = summary(run_worker(sys.executable, "scipy", folder, args.repeats))
        minutes = f"{args.evidently_timeout} min a run"
        log(f"{name}: Evidently {version} ({args.repeats} run(s), {minutes}) ...")
        ev = run_worker(
            EVIDENTLY_PY,
            "evidently",
            folder,
            args.repeats,
            args.evidently_timeout * 60,
            args.evidently_max_gb * 1024,
        )
        res["evidently"] = summary(ev)
    e = res["evidently"]
    e_s = e.get("s", e.get("run_s", 0.0))  # killed: a lower bound
    for key in ("drift", "raw"):
        res[f"ratio_{key}"] = round(e_s / res[f"ferry_{key}"]["s"], 1)
        res[f"memory_share_{key}"] = round(res[f"ferry_{key}"]["peak_mb"] / e["peak_mb"], 3)
        res[f"scipy_ratio_{key}"] = round(res["scipy"]["s"] / res[f"ferry_{key}"]["s"], 1)
    res["flagged"] = {k: sorted(res[k]["drifted"]) for k in SIDES if "drifted" in res[k]}
    return res


def disagreements(flagged: dict[str, list[str]]) -> list[str]:
    """One line per column some sides flag and others don't."""
    union = sorted(set().union(*map(set, flagged.values())))
    lines = []
    for column in union:
        yes = [SIDES[k] for k, cols in flagged.items() if column in cols]
        if len(yes) < len(flagged):
            no = [SIDES[k] for k in flagged if SIDES[k] not in yes]
            lines.append(f"{column}: flagged by {', '.join(yes)}; not by {', '.join(no)}")
    return lines


def checks(r: dict[str, Any], key: str) -> list[tuple[str, bool | None, str]]:
    """(criterion, passed or None for not known, the figures) for ferryml's ``key`` mode."""
    f, s, e = r[f"ferry_{key}"], r["scipy"], r["evidently"]
    bound = ">= " if "killed" in e else ""  # then Evidently's figures are lower bounds
    ratio, share = r[f"ratio_{key}"], r[f"memory_share_{key}"]
    flagged = r["flagged"]
    same = flagged[f"ferry_{key}"] == flagged.get("evidently")
    why = "" if "evidently" in flagged else " (Evidently did not finish)"

    def met(ok: bool) -> bool | None:  # a lower bound that misses says nothing
        return ok if ok or not bound else None

    return [
        (f">= {TARGET}x faster than Evidently", met(ratio >= TARGET), f"{bound}{ratio}x"),
        (
            "<= 1/3 of Evidently's peak memory",
            met(share <= MEMORY_SHARE),
            f"{f['peak_mb']:.0f} / {bound}{e['peak_mb']:.0f} MB = {share:.2f}",
        ),
        (
            "faster than scipy direct",
            f["s"] < s["s"],
            f"{f['s']:.3f} s vs {s['s']:.3f} s ({r[f'scipy_ratio_{key}']}x)",
        ),
        (
            "same columns flagged as Evidently",
            same if "evidently" in flagged else None,
            f"{len(flagged[f'ferry_{key}'])} vs {len(flagged.get('evidently', []))}{why}",
        ),
    ]


def fmt_time(x: dict[str, Any]) -> str:
    return f"> {x['run_s']:.0f} s" if "killed" in x else f"{x['s']:.3f} s"


def report(results: list[dict[str, Any]], version: str) -> None:
    print(f"Data drift: ferryml vs scipy direct vs Evidently {version} DataDriftPreset")
    for r in results:
        f, d, w = r["ferry_profile"], r["ferry_drift"], r["ferry_raw"]
        s, e = r["scipy"], r["evidently"]
        peers = PEERS_S.get(r["rows"], "?") if r["columns"] == len(NARROW) else "?"
        print(
            f"\n{r['rows']:,} rows a side x {r['columns']:,} columns ({r['numeric']} numeric); "
            f"PEERS: Evidently {peers} s"
        )
        json_kb, html_kb, html_s = f["profile_json_kb"], d["html_kb"], d["html_s"]
        ev_extra = (
            f"{e['killed']}, resident {e['rss_mb']:.0f} MB at the kill"
            if "killed" in e
            else f"+ Datasets {e['datasets_s']:.2f} s"
        )
        rows = [
            ("ferryml: profile the reference (once)", f, f"profile JSON {json_kb:.0f} KB"),
            ("ferryml: drift, profile vs current", d, f"HTML {html_kb:.0f} KB in {html_s:.2f} s"),
            ("ferryml: drift, both raw (exact)", w, ""),
            ("scipy direct, raw columns", s, ""),
            ("Evidently DataDriftPreset run()", e, ev_extra),
        ]
        for label, x, extra in rows:
            traced = f", allocated {x['traced_mb']:.1f} MB" if "traced_mb" in x else ""
            growth = f" (+{x.get('growth_mb', 0):.0f} MB over the loaded data{traced})"
            print(
                f"  {label:<40}{fmt_time(x):>11}   peak {x['peak_mb']:>6.0f} MB"
                f"{'' if 'killed' in x else growth}   {extra}"
            )
        bound = ">= " if "killed" in e else ""
        print(f"  Evidently / ferryml drift from profile: {bound}{r['ratio_drift']}x")
        print(f"  Evidently / ferryml both raw:           {bound}{r['ratio_raw']}x")
        print(f"  scipy direct / ferryml from profile:    {r['scipy_ratio_drift']}x")
        print(f"  scipy direct / ferryml both raw:        {r['scipy_ratio_raw']}x")
        flagged, shifted = r["flagged"], sorted(r["shifted"])
        for k, cols in flagged.items():
            missed, extra_cols = sorted(set(shifted) - set(cols)), sorted(set(cols) - set(shifted))
            print(
                f"  flagged by {SIDES[k]:<16} {len(cols):>4}; vs the {len(shifted)} moved: "
                f"missed {missed or 'none'}, extra {extra_cols or 'none'}"
            )
        if "evidently" not in flagged:
            print("  Evidently's flags: unknown, it did not finish")
        lines = disagreements(flagged)
        print(f"  sides agree on every column: {'yes' if not lines else 'NO'}")
        for line in lines[:30]:
            print(f"    {line}")
        if len(lines) > 30:
            print(f"    ... and {len(lines) - 30} more")
    print("\nTargets (set for 1,000,000 rows x 25 columns), ferryml from profile | both raw:")
    for r in results:
        print(f"  {r['rows']:,} x {r['columns']:,}:")
        for (label, ok_d, fig_d), (_, ok_w, fig_w) in zip(
            checks(r, "drift"), checks(r, "raw"), strict=True
        ):
            mark = {True: "PASS", False: "MISS", None: "n/a "}
            print(f"    {label:<36} {mark[ok_d]} {fig_d:<34} | {mark[ok_w]} {fig_w}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--wide", action="store_true", help="also 100,000 rows x 1,000 columns")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-timeout", type=float, default=15, help="minutes")
    parser.add_argument("--evidently-max-gb", type=float, default=16, help="resident, GB")
    parser.add_argument("--quick", action="store_true", help="20,000 rows (wide: 5,000), once")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = Path(args.folder)
        if args.worker == "evidently":
            result = worker_evidently(folder, args.repeats)
        elif args.worker == "scipy":
            result = worker_scipy(folder, args.repeats)
        else:
            result = worker_ferry(args.worker, folder, args.repeats)
        print(json.dumps(result))
        return
    wide_rows = WIDE_ROWS
    if args.quick:
        args.rows, args.repeats, wide_rows = [20_000], 1, 5_000
    cases = [(NARROW, rows) for rows in args.rows]
    if args.wide:
        cases.append((wide_layout(), wide_rows))
    version = ensure_evidently()
    results = [measure(layout, rows, args, version) for layout, rows in cases]
    if args.json:
        print(json.dumps({"evidently": version, "results": results}))
    else:
        report(results, version)


if __name__ == "__main__":
    main()
