"""A small world for the closed-loop tests: a versioned table, a training pipeline in the
project folder, model v1 serving as the champion of deployment ``churn``, and a monitor that alerts
when accuracy falls. Traffic is written to the prediction log the way a server writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import ferryml as ferry
from ferryml.automation import Agent, decision_story
from ferryml.automation.policy import Policy
from ferryml.config import Settings
from ferryml.predictions import record_feedback
from ferryml.registry.models import Registry
from ferryml.serving.deployments import Deployments
from ferryml.serving.predlog import PredictionLog

PIPELINE = """
import os, time
import pandas as pd
from sklearn.linear_model import LogisticRegression
import ferryml as ferry
import ferryml.data
from ferryml.pipelines import pipeline, step


@step
def fit(data: str, fail: bool, pause: str) -> int:
    if fail:
        raise RuntimeError("the training data is broken")
    if pause and not os.path.exists(pause):  # the first run waits to be killed
        open(pause, "w").close()
        time.sleep(60)
    frame = ferryml.data.load(data)
    X, y = frame[["a", "b"]], frame["label"]
    model = LogisticRegression().fit(X, y)
    info = ferry.log_model(model, input_example=X.head(), training_data=X,
                           registered_model_name="m")
    return int(info.registered_model_version)


@pipeline
def training(data: str = "churn@1", fail: bool = False, pause: str = ""):
    return fit(data, fail, pause)
"""


def rows(n: int, seed: int, changed: bool) -> pd.DataFrame:
    """Features and labels; after the change the label follows ``b`` instead of ``a``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    score = frame["b"] if changed else frame["a"]
    noise = rng.random(n) < 0.03
    return frame.assign(label=((score > 0).to_numpy() ^ noise).astype(int))


@dataclass
class World:
    settings: Settings
    module: str
    sent: int = 0

    def traffic(
        self, n: int, *, changed: bool, version: int = 1, wrong: bool = False, seed: int = 0
    ) -> None:
        """``n`` predictions of ``version`` (its own model's outputs, or always wrong ones)
        with their labels."""
        model = ferry.load_model(f"models:/m/{version}")
        frame = rows(n, seed + self.sent, changed)
        features = frame[["a", "b"]]
        outputs = model.predict(features)
        if wrong:
            outputs = 1 - frame["label"].to_numpy()
        ids = [f"p{self.sent + i}" for i in range(n)]
        with PredictionLog(self.settings) as log:
            for i in range(n):
                log.record(
                    "churn", f"v{version}", "m", version, [ids[i]], features.iloc[[i]],
                    [int(outputs[i])], 1.0,
                )  # fmt: skip
        record_feedback(zip(ids, frame["label"].tolist(), strict=True), settings=self.settings)
        self.sent += n

    def policy(self, **overrides: Any) -> Policy:
        return Policy.from_dict("retrain-churn", self.policy_body(**overrides))

    def policy_body(self, **overrides: Any) -> dict[str, Any]:
        """The ``ferry.yaml`` mapping of ``policy``."""
        body: dict[str, Any] = {
            "deployment": "churn",
            "triggers": [{"alert": "churn-watch"}],
            "retrain": {"pipeline": f"{self.module}:training", "feedback": 400, "holdout": 0.3},
            "gate": {"metric": "accuracy", "min_delta": 0.05},
            "rollout": {"steps": [{"weight": 50, "requests": 40}], "min_labelled": 20},
        }  # fmt: skip
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        return body

    def routes(self) -> list[tuple[int, float, str]]:
        """The deployment's routes as (version, weight, role)."""
        manager = Deployments(self.settings)
        try:
            return [(r.version, r.weight, r.role) for r in manager.get("churn").routes]
        finally:
            manager.close()

    def champion(self) -> int:
        """The version the champion alias points at."""
        registry = Registry(self.settings)
        try:
            return registry.store.resolve_alias("m", "champion")
        finally:
            registry.close()

    def start(self, agent: Agent) -> int:
        """A first pass that sets the watermarks, then a changed world the monitor alerts
        on, and the pass that starts a decision for it: its id."""
        assert agent.tick().created == []
        self.traffic(400, changed=True)
        tick = agent.tick()
        assert len(tick.created) == 1, tick
        return tick.created[0]

    def story(self, decision: int) -> dict[str, Any]:
        return decision_story(self.settings, decision)
