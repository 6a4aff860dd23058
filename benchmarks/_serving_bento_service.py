"""BentoML services of benchmarks/serving.py: copied into the run's temp folder as
service.py and started with `bentoml serve service:Plain` (or service:Batched, adaptive
batching on) from BentoML's own venv. Both load the same pickled pipeline
(BENCH_MODEL_PATH) and take the same body as ferryml: {"records": [{column: value}, ...]}.
"""

import os

import bentoml
import joblib
import pandas as pd

MODEL_PATH = os.environ["BENCH_MODEL_PATH"]
MAX_BATCH = int(os.environ.get("BENCH_MAX_BATCH", "64"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "60000"))  # BentoML's default


def load() -> tuple:
    model = joblib.load(MODEL_PATH)
    return model, list(model.feature_names_in_)


class _Predictor:
    def __init__(self) -> None:
        self.model, self.columns = load()

    def run(self, records: list[dict[str, float]]) -> list[int]:
        frame = pd.DataFrame.from_records(records, columns=self.columns)
        return self.model.predict(frame).tolist()


@bentoml.service
class Plain(_Predictor):
    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> list[int]:
        return self.run(records)


@bentoml.service
class Batched(_Predictor):
    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, records: list[dict[str, float]]) -> list[int]:
        return self.run(records)


@bentoml.service(workers=2)
class Plain2(_Predictor):
    """Plain with two worker processes (for the open-loop workload)."""

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> list[int]:
        return self.run(records)
