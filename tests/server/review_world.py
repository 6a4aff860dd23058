"""Deployments whose predictions a review queue chooses from: models ``reviewed`` v1 (it
reads ``a``) and v2 (it reads ``b``), and deployments that answer with v1 while v2 shadows
them, their traffic logged as a server logs it."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.serving.deployments import Deployments
from ferryml.serving.predlog import PredictionLog

MODEL = "reviewed"


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


def train(settings: Settings) -> dict[int, LogisticRegression]:
    """Register v1 and v2 of ``MODEL``; the fitted models by version."""
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    frame = rows(400, seed=1)
    models = {}
    for column in ("a", "b"):
        model = LogisticRegression().fit(frame[["a", "b"]], (frame[column] > 0).astype(int))
        with ferry.start_run():
            info = ferry.log_model(model, input_example=frame.head(3), registered_model_name=MODEL)
        models[int(info.registered_model_version)] = model
    return models


def deployment(settings: Settings, n: int = 40, prefix: str = "review") -> tuple[str, pd.DataFrame]:
    """A new deployment answering with v1, v2 its shadow, with ``n`` requests logged (and
    their shadow copies): its name, and the requests with ``id``, ``v1`` and ``v2`` (the
    routes' answers) and ``p1`` (v1's highest class probability)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    manager = Deployments(settings)
    try:
        manager.create(name, MODEL, 1, shadow=2)
    finally:
        manager.close()
    v1 = ferry.load_model(f"models:/{MODEL}/1")
    v2 = ferry.load_model(f"models:/{MODEL}/2")
    frame = rows(n, seed=len(name))
    features = frame[["a", "b"]]
    out1, out2 = v1.predict(features), v2.predict(features)
    ids = [uuid.uuid4().hex for _ in range(n)]
    now = time.time()
    with PredictionLog(settings) as log:
        for i in range(n):
            row = features.iloc[[i]]
            at = now - n + i
            log.record(name, "v1", MODEL, 1, [ids[i]], row, [int(out1[i])], 2.0, time=at)
            copy = uuid.uuid4().hex
            log.record(name, "v2", MODEL, 2, [copy], row, [int(out2[i])], 3.0, time=at + 0.01)
    proba = np.asarray(v1.predict_proba(features)).max(axis=1)
    return name, frame.assign(id=ids, v1=out1, v2=out2, p1=proba)
