"""The closed loop's records for the browser tests, built with ferryml's Python API: a
dataset in two versions, two pipeline runs (one failed), two model versions trained on the
data with a gate's verdict, a deployment with a canary and its traffic, a monitor's
windows, a decision waiting for approval and a review queue."""

from __future__ import annotations

import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
import ferryml.data
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.monitoring.monitors import MonitorSpec, add_monitor, run_monitor
from ferryml.monitoring.review import configure_review, fill_review_queue
from ferryml.pipelines import run_target
from ferryml.predictions import record_feedback
from ferryml.serving.deployments import Deployments
from ferryml.serving.predlog import PredictionLog
from ferryml.store.factory import open_automation_store

MODEL = "churn-model"
DEPLOYMENT = "churn"
PIPELINE = """
from ferryml.pipelines import pipeline, step


@step
def prepare(rows: int) -> int:
    print(f"preparing {rows} rows")
    return rows


@step
def fit(rows: int, fail: bool) -> int:
    if fail:
        raise RuntimeError("the training data is broken")
    return rows * 2


@pipeline
def training(rows: int = 10, fail: bool = False):
    return fit(prepare(rows), fail)
"""


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return frame.assign(label=(frame["a"] > 0).astype(int))


def build(settings: Settings, folder: Path) -> dict[str, Any]:
    """Fill the stores of ``settings``; what the tests need to find the records."""
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    workspace = Workspace(settings)
    try:
        workspace.add_frame(rows(500, 1), "churn")
        workspace.add_frame(rows(600, 2).assign(b=lambda f: f["b"] + 1), "churn")
    finally:
        workspace.close()

    module = f"ui_training_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(textwrap.dedent(PIPELINE))
    sys.path.insert(0, str(folder))
    try:
        ok = run_target(f"{module}:training", {"rows": "10"}, settings=settings)
        failed = run_target(f"{module}:training", {"fail": "true"}, settings=settings)
    finally:
        sys.path.remove(str(folder))

    for strength in (1.0, 0.001):
        with ferry.start_run(run_name=f"train-c{strength}"):
            frame = ferryml.data.load("churn@1")
            X = frame[["a", "b"]]
            model = LogisticRegression(C=strength).fit(X, frame["label"])
            ferry.log_param("C", strength)
            info = ferry.log_model(
                model, input_example=X.head(3), training_data=X, registered_model_name=MODEL
            )
            if strength < 1:  # its evaluation's metrics and plots, on the run that made it
                version = info.registered_model_version
                ferry.evaluate(f"models:/{MODEL}/{version}", rows(200, 5), target="label")
    ferry.set_registered_model_alias(MODEL, "champion", 1)
    holdout = rows(300, 3)
    ferry.promote(MODEL, 2, data=holdout, target="label")  # the gate's verdict, recorded

    manager = Deployments(settings)
    try:
        manager.create(DEPLOYMENT, MODEL, 1, canary=2, canary_weight=20.0)
    finally:
        manager.close()
    traffic = rows(300, 4)
    ids = [uuid.uuid4().hex for _ in range(len(traffic))]
    now = time.time()
    features = traffic[["a", "b"]]
    answers = {
        v: ferry.load_model(f"models:/{MODEL}/{v}").predict(features) for v in (1, 2)
    }  # one call a model: answering row by row costs seconds
    with PredictionLog(settings) as log:
        for i in range(len(traffic)):
            version = 2 if i % 5 == 0 else 1
            at = now - 240 + i * 0.8  # the last four minutes
            log.record(
                DEPLOYMENT, f"v{version}", MODEL, version, [ids[i]], features.iloc[[i]],
                [int(answers[version][i])], 1.0 + i % 7, time=at,
            )  # fmt: skip
    record_feedback(zip(ids[:200], traffic["label"][:200].tolist(), strict=True), settings=settings)

    add_monitor(
        settings,
        MonitorSpec(
            "churn-watch", DEPLOYMENT, f"model:{MODEL}@champion", window=100,
            task="classification", checks="drift,performance,concept", rules=["accuracy < 0.8"],
        ),
    )  # fmt: skip
    run_monitor(settings, "churn-watch")

    store = open_automation_store(settings)
    try:
        decision = store.create_decision(
            "retrain-churn", DEPLOYMENT, "triggered", {"started": int(now * 1000)},
            ("trigger", "alert 1: accuracy < 0.8", {}),
        )  # fmt: skip
        context = {"model": MODEL, "champion": 1, "candidate": 2, "trigger": "alert churn-watch"}
        store.advance(
            decision, "triggered", "awaiting_approval", context,
            ("gate", "v2 passed the gate; waiting for a maintainer to approve", {}),
        )  # fmt: skip
    finally:
        store.close()

    configure_review(DEPLOYMENT, strategy="confidence", size=5, choices=[0, 1], settings=settings)
    fill_review_queue(DEPLOYMENT, settings=settings)
    return {
        "pipeline_run": ok.run_id,
        "failed_run": failed.run_id,
        "decision": decision,
        "prediction": ids[0],
    }
