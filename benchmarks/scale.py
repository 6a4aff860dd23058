"""Scale benchmark: a prediction log larger than memory, locally and on a Dask cluster.

    python benchmarks/scale.py [--rows N] [--days D] [--work DIR] [--keep] [--generate-only]
                               [--json]

Generates N rows (default 100,000,000) x 25 columns of prediction log (id, time, deployment,
route, model, version, latency_ms, 16 features, prediction, and the hive partition date)
as Parquet under DIR/log/date=YYYY-MM-DD/, D days (default 10), the last day shifted.
Then, each step in a fresh process so its peak memory is its own:

- floor: reading the whole log once with pyarrow (every column, batch by batch), and the
  day's partition once: what any reader pays at least;
- drift of the last day against a reference profile (1,000,000 rows of the unshifted
  distribution), ``detect_dataset_drift``, locally and on a cluster of a scheduler and two
  worker processes (``LocalCluster``, one thread each);
- a batch prediction of the whole log (``run_batch``, a logistic regression on the 13
  float features, into a folder), locally with two processes and on the cluster;
- the prediction log's compaction: reading a day of 2,000 flushes of 100 rows before and
  after ``predictions.compact``.

Peak memory is the largest resident set of the step's process or of one of its children
(``getrusage``; forked children share pages with it), and of each Dask worker (restarted,
warmed up with the imports, peak reset before the step); times are wall clock, imports
left out. The results are checked to agree: the drift reports are equal, and both
predictions hold the same rows and the same sum of predictions.
"""

from __future__ import annotations

import argparse
import binascii
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY0 = np.datetime64("2026-11-20T00:00:00", "us")
FILE_ROWS = 250_000  # a day is several files: work for both Dask workers
FLOATS = [f"feature.f{i}" for i in range(13)]
URI = "models:/scale@champion"


# -- data -----------------------------------------------------------------------------------


def _ids(rng: np.random.Generator, n: int) -> pa.Array:
    data = binascii.hexlify(rng.bytes(16 * n))
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def log_table(rows: int, day: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = DAY0 + np.timedelta64(day, "D")
    micros = np.sort(rng.integers(0, 86_400_000_000, rows))
    columns: dict[str, Any] = {
        "id": _ids(rng, rows),
        "time": pa.array(start + micros.astype("timedelta64[us]"), pa.timestamp("us", "UTC")),
        "deployment": pa.array(np.repeat("churn", rows)).dictionary_encode(),
        "route": pa.array(np.repeat("primary", rows)).dictionary_encode(),
        "model": pa.array(np.repeat("churn", rows)).dictionary_encode(),
        "version": np.full(rows, 3, dtype=np.int64),
        "latency_ms": rng.gamma(2.0, 2.0, rows),
    }
    for i, name in enumerate(FLOATS):
        columns[name] = rng.normal(i + shift * (i % 3 == 0), 1.0 + i / 10, rows)
    columns["feature.n0"] = rng.integers(0, 100, rows)
    columns["feature.n1"] = rng.poisson(3 + shift, rows)
    plans = np.array(["free", "pro", "team", "enterprise"])
    weights = [0.6, 0.25, 0.1, 0.05] if not shift else [0.4, 0.3, 0.2, 0.1]
    columns["feature.plan"] = pa.array(plans[rng.choice(4, rows, p=weights)])
    columns["prediction"] = rng.random(rows)
    return pa.table(columns)


def generate(root: Path, rows: int, days: int) -> dict[str, Any]:
    start = time.perf_counter()
    per_day = rows // days
    files = 0
    for day in range(days):
        folder = root / f"date={(DAY0 + np.timedelta64(day, 'D')).astype('datetime64[D]')}"
        folder.mkdir(parents=True)
        left, part = per_day + (rows % days if day == days - 1 else 0), 0
        shift = 1.0 if day == days - 1 else 0.0
        while left > 0:
            n = min(left, FILE_ROWS)
            table = log_table(n, day, seed=day * 1000 + part, shift=shift)
            pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=131_072)
            left, part, files = left - n, part + 1, files + 1
    size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
    return {
        "rows": rows,
        "days": days,
        "files": files,
        "bytes": size,
        "seconds": time.perf_counter() - start,
    }


def last_day(days: int) -> str:
    return str((DAY0 + np.timedelta64(days - 1, "D")).astype("datetime64[D]"))


# -- steps, each run in a process of its own -------------------------------------------------


def step(name: str, work: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``name`` in a fresh process; its result with the peak memory of it (and of the
    Dask workers, for the cluster's steps)."""
    command = [
        sys.executable,
        __file__,
        "--step",
        name,
        "--work",
        str(work),
        "--args",
        json.dumps(args),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"step {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _reset_peak() -> None:
    """Forget the peak resident set so far: a process started from a larger one inherits
    that one's peak (Linux keeps it across fork and exec)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _worker_peaks(address: str) -> list[float]:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        found = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return sorted(found.values())


def _fresh_workers(client: Any) -> None:
    """Restart the workers, import what the steps use, and forget their peaks: what a
    long-running cluster is like."""
    client.restart()

    def warm() -> None:
        import sklearn.linear_model  # noqa: F401

        import ferryml.monitoring.dataset_drift  # noqa: F401
        import ferryml.serving._batch_dataset  # noqa: F401

        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    client.run(warm)


def run_step(name: str, work: Path, args: dict[str, Any]) -> dict[str, Any]:
    os.environ["FERRY_HOME"] = str(work / "home")
    _reset_peak()
    if name == "generate":
        return generate(work / "log", args["rows"], args["days"])
    if name == "prepare":
        prepare(work)
        return {}
    if name != "floor":  # imports are not the work measured
        import sklearn.linear_model  # noqa: F401

        import ferryml.monitoring.dataset_drift  # noqa: F401
        import ferryml.serving.batch  # noqa: F401
    executor: Any = "local"
    if args.get("address"):  # connected before the clock starts: a fixed cost, not the work
        from distributed import Client

        connected = time.perf_counter()
        executor = Client(args["address"], timeout="30s")
        connect_s = time.perf_counter() - connected
    start = time.perf_counter()
    result: dict[str, Any] = {}
    root, day = work / "log", args.get("day")
    if name == "floor":
        where = root / f"date={day}" if day else root
        rows = 0
        for file in sorted(where.rglob("*.parquet")):
            for batch in pq.ParquetFile(file).iter_batches(batch_size=250_000):
                rows += batch.num_rows
        result["rows"] = rows
    elif name == "drift":
        from ferryml.data.profile import Profile
        from ferryml.monitoring.dataset_drift import detect_dataset_drift

        reference = Profile.from_dict(json.loads((work / "reference.json").read_text()))
        report = detect_dataset_drift(
            reference,
            root,
            where={"date": day},
            prediction="prediction",
            executor=executor,
        )
        result["report"] = report.to_dict()
        result["rows"] = report.current_rows
    elif name == "predict":
        from ferryml.serving.batch import run_batch

        out = work / args["output"]
        shutil.rmtree(out, ignore_errors=True)  # left by a run stopped half-way
        done = run_batch(
            URI,
            root,
            out,
            chunk_rows=250_000,
            workers=2,
            column="challenger",
            executor=executor,
        )
        result["rows"] = done.rows
        result["prediction_sum"] = sum(
            float(np.sum(batch.column(0).to_numpy(zero_copy_only=False)))
            for file in sorted(out.rglob("*.parquet"))
            for batch in pq.ParquetFile(file).iter_batches(columns=["challenger"])
        )
        shutil.rmtree(out)  # the log's size again: two of them need not fit on the disk
    elif name == "compaction":
        result = _compaction(work)
    result["seconds"] = time.perf_counter() - start
    result["peak_mb"] = _peak_mb()
    if args.get("address"):
        executor.close()
        result["connect_s"] = connect_s
        result["worker_peak_mb"] = _worker_peaks(args["address"])
    return result


def _compaction(work: Path) -> dict[str, Any]:
    import pandas as pd

    from ferryml import predictions
    from ferryml.config import Settings
    from ferryml.serving.predlog import PredictionLog, new_prediction_id

    settings = Settings.resolve(home=work / "predlog")
    flushes, rows = 2_000, 100
    rng = np.random.default_rng(0)
    start = 1_796_083_200.0  # 2026-12-01
    with PredictionLog(settings, compact_every=None) as log:
        for i in range(flushes):
            frame = pd.DataFrame({f"f{j}": rng.normal(size=rows) for j in range(8)})
            ids = [new_prediction_id() for _ in range(rows)]
            log.record(
                "churn",
                "primary",
                "churn",
                1,
                ids,
                frame,
                rng.random(rows),
                2.0,
                time=start + i * 40,
            )
            log.flush()  # a partition a flush, as a server flushing every second writes
    day = {"since": "2026-12-01", "until": "2026-12-02", "settings": settings}

    def read() -> tuple[float, int]:
        t = time.perf_counter()
        n = len(predictions.load("churn", with_feedback=False, **day))  # type: ignore[arg-type]
        return time.perf_counter() - t, n

    before = min(read() for _ in range(3))
    t = time.perf_counter()
    report = predictions.compact(settings)
    compact_s = time.perf_counter() - t
    after = min(read() for _ in range(3))
    return {
        "partitions_before": report.merged,
        "partitions_after": report.written,
        "rows": before[1],
        "read_before_s": before[0],
        "read_after_s": after[0],
        "compact_s": compact_s,
        "same_rows": before[1] == after[1],
    }


# -- setup -----------------------------------------------------------------------------------


def prepare(work: Path) -> None:
    """The reference profile and the registered model the steps use."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import ferryml as ferry
    from ferryml.data.profile import profile_frame

    sample = log_table(1_000_000, 0, seed=99).to_pandas()
    features = sample[[c for c in sample.columns if c.startswith("feature.")]]
    reference = profile_frame(features.join(sample[["prediction"]]))
    (work / "reference.json").write_text(json.dumps(reference.to_dict()))
    ferry.configure(home=work / "home")
    X = pd.DataFrame(sample[FLOATS].to_numpy()[:50_000], columns=FLOATS)
    model = LogisticRegression(max_iter=200).fit(X, X["feature.f0"] + X["feature.f3"] > 3)
    with ferry.start_run():
        ferry.log_model(model, input_example=X.head(), registered_model_name="scale")
    ferry.set_registered_model_alias("scale", "champion", 1)
    ferry.configure(home=work / "home")  # closes the client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--keep", action="store_true", help="Keep the generated data (and use it next time)."
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="Generate the data into --work and stop."
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--args", default="{}", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.step:
        print(json.dumps(run_step(options.step, options.work, json.loads(options.args))))
        return
    work = options.work or Path(tempfile.mkdtemp(prefix="ferry-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"load_before": os.getloadavg()}
    try:
        # in processes of their own, so this one stays small: its children inherit its peak
        shape = {"rows": options.rows, "days": options.days}
        made = work / "generated.json"  # data kept by --keep is used again when of this shape
        if made.exists() and json.loads(made.read_text())["shape"] == shape:
            figures["data"] = json.loads(made.read_text())["data"]
        else:
            shutil.rmtree(work / "log", ignore_errors=True)
            figures["data"] = step("generate", work, shape)
            made.write_text(json.dumps({"shape": shape, "data": figures["data"]}))
        if options.generate_only:
            return
        step("prepare", work, {})
        day = last_day(options.days)
        figures["floor_all"] = step("floor", work, {})
        figures["floor_day"] = step("floor", work, {"day": day})
        figures["drift_local"] = step("drift", work, {"day": day})
        figures["predict_local"] = step("predict", work, {"output": "scored-local"})
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            ) as cluster,
            Client(cluster) as client,
        ):
            address = cluster.scheduler_address
            _fresh_workers(client)
            figures["drift_dask"] = step("drift", work, {"day": day, "address": address})
            _fresh_workers(client)
            figures["predict_dask"] = step(
                "predict", work, {"output": "scored-dask", "address": address}
            )
        figures["compaction"] = step("compaction", work, {})
        local, remote = figures["drift_local"].pop("report"), figures["drift_dask"].pop("report")
        figures["drift_agrees"] = local == remote
        figures["drifted"] = local["drifted_columns"]
        figures["predictions_agree"] = (
            figures["predict_local"]["rows"] == figures["predict_dask"]["rows"] == options.rows
            and abs(
                figures["predict_local"]["prediction_sum"]
                - figures["predict_dask"]["prediction_sum"]
            )
            < 1e-6 * options.rows
        )
        figures["load_after"] = os.getloadavg()
    finally:
        if not (options.keep or options.generate_only):
            shutil.rmtree(work, ignore_errors=True)
    if options.json:
        print(json.dumps(figures, indent=2))
        return
    _print(figures)


def _print(f: dict[str, Any]) -> None:
    d = f["data"]
    print(
        f"data: {d['rows']:,} rows x 25 columns, {d['days']} days, {d['files']} files, "
        f"{d['bytes'] / 2**30:.2f} GiB, generated in {d['seconds']:.0f} s"
    )
    print(f"load average before {f['load_before'][0]:.1f}, after {f['load_after'][0]:.1f}")
    rows = [
        ("floor: read the whole log once", f["floor_all"]),
        ("floor: read the day once", f["floor_day"]),
        ("drift of the day, local", f["drift_local"]),
        ("drift of the day, Dask (2 workers)", f["drift_dask"]),
        ("predict the whole log, local (2 processes)", f["predict_local"]),
        ("predict the whole log, Dask (2 workers)", f["predict_dask"]),
    ]
    for label, r in rows:
        workers = r.get("worker_peak_mb")
        extra = f", workers {' / '.join(f'{w:.0f}' for w in workers)} MB" if workers else ""
        if "connect_s" in r:
            extra += f" (+{r['connect_s']:.1f} s to connect)"
        print(
            f"{label:45s} {r['seconds']:8.1f} s  {r['rows'] / r['seconds'] / 1e6:6.2f} M rows/s"
            f"  peak {r['peak_mb']:6.0f} MB{extra}"
        )
    print(
        f"drift reports equal: {f['drift_agrees']} (drifted: {', '.join(f['drifted'])}); "
        f"predictions agree: {f['predictions_agree']}"
    )
    c = f["compaction"]
    print(
        f"prediction log, a day of {c['rows']:,} rows: read {c['read_before_s']:.2f} s from "
        f"{c['partitions_before']} partitions, {c['read_after_s']:.2f} s from "
        f"{c['partitions_after']} after compaction ({c['compact_s']:.1f} s); same rows: "
        f"{c['same_rows']}"
    )


if __name__ == "__main__":
    main()
