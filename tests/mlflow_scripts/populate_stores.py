"""Run by the real mlflow client: the same small history written to each tracking URI in
argv (an mlruns/ folder as file:..., a running mlflow server as http://...), through the
client's API only: bulk runs, then _history.log_history. Prints one JSON object per URI of
what it wrote."""

import json
import sys
import time

import mlflow
from _history import RUNS, VALUES, log_history
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

BULK = 20
out = {}
for uri in sys.argv[1:]:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    now = int(time.time() * 1000)
    bulk = client.create_experiment("bulk", tags={"team": "ml"})
    for i in range(BULK):
        run = client.create_run(bulk, run_name=f"r{i}", start_time=now + i)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"m{k}", i + k / 10, now, s) for k in range(3) for s in range(3)],
            params=[Param("i", str(i)), Param("kind", "bulk")],
            tags=[RunTag("team", "ml")],
        )
        client.set_terminated(run.info.run_id, end_time=now + i + 1)
    wrote = log_history(client, now)
    out[uri] = {**wrote, "runs": BULK + RUNS, "values": BULK * 9 + VALUES, "bulk": BULK}
print(json.dumps(out))
