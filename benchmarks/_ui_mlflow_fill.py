"""Fills an MLflow SQLite store with the UI benchmark's runs (run in MLflow's venv).

    python _ui_mlflow_fill.py DB_PATH ARTIFACTS_DIR RUNS STEPS

MLflow's client makes the store, the experiment and one template run; the 10,000 runs and
the long metric are then inserted with sqlite3 in the client's own row layout, since
logging them one run at a time through MLflow takes most of an hour. Prints one JSON line.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ui_workload import LONG_KEY, long_curve, seeded_runs  # noqa: E402


def main() -> None:
    db, artifacts, runs, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.create_experiment("ui-bench", artifact_location=Path(artifacts).as_uri())
    template = client.create_run(experiment, run_name="template")
    client.set_terminated(template.info.run_id)
    conn = sqlite3.connect(db)
    (row,) = conn.execute("SELECT * FROM runs WHERE run_uuid = ?", (template.info.run_id,))
    columns = [d[0] for d in conn.execute("SELECT * FROM runs LIMIT 0").description]
    conn.execute("DELETE FROM tags WHERE run_uuid = ?", (template.info.run_id,))
    conn.execute("DELETE FROM runs WHERE run_uuid = ?", (template.info.run_id,))
    start = int(time.time() * 1000) - runs * 1000
    ids = {}
    run_rows, params, metrics, tags = [], [], [], []
    for i, (name, ps, ms) in enumerate(seeded_runs(runs)):
        rid = uuid.uuid4().hex
        ids[name] = rid
        values = dict(zip(columns, row, strict=True))
        values.update(
            run_uuid=rid,
            name=name,
            start_time=start + i * 1000,
            end_time=start + i * 1000 + 500,
            artifact_uri=f"{Path(artifacts).as_uri()}/{rid}/artifacts",
            status="FINISHED",
        )
        run_rows.append(tuple(values[c] for c in columns))
        params += [(k, v, rid) for k, v in ps.items()]
        metrics += [(k, v, start + i * 1000, rid, 0, 0) for k, v in ms.items()]
        tags.append(("mlflow.runName", name, rid))
    long_id = uuid.uuid4().hex
    values = dict(zip(columns, row, strict=True))
    values.update(
        run_uuid=long_id,
        name="long",
        start_time=start - 1000,
        end_time=start,
        artifact_uri=f"{Path(artifacts).as_uri()}/{long_id}/artifacts",
        status="FINISHED",
    )
    run_rows.append(tuple(values[c] for c in columns))
    tags.append(("mlflow.runName", "long", long_id))
    curve = [(LONG_KEY, v, start + s, long_id, s, 0) for s, v in long_curve(steps)]
    holes = ", ".join("?" * len(columns))
    with conn:
        conn.executemany(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({holes})", run_rows)
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
        for table in ("metrics", "latest_metrics"):
            conn.executemany(
                f"INSERT INTO {table} (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                metrics + ([curve[-1]] if table == "latest_metrics" else curve),
            )
    conn.close()
    print(json.dumps({"experiment_id": experiment, "ids": ids, "long": long_id}))


if __name__ == "__main__":
    main()
