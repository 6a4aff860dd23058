"""The demo's pipeline: prepare the versioned data once, train a forest per depth, score
each on the holdout. Steps are plain functions; ferryml caches and parallelises them."""

from __future__ import annotations

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import ferryml as ferry
import ferryml.data
from ferryml.pipelines import pipeline, step


@step
def prepare(data_ref: str) -> pd.DataFrame:
    """The data version, with a column marking the holdout rows."""
    frame = ferryml.data.load(data_ref)
    _, holdout = train_test_split(
        frame.index, test_size=0.25, random_state=0, stratify=frame["target"]
    )
    return frame.assign(holdout=frame.index.isin(holdout))


@step
def train(frame: pd.DataFrame, depth: int) -> RandomForestClassifier:
    fit = frame[~frame["holdout"]]
    model = RandomForestClassifier(n_estimators=100, max_depth=depth, random_state=0)
    return model.fit(fit.drop(columns=["target", "holdout"]), fit["target"])


@step
def score(model: RandomForestClassifier, frame: pd.DataFrame) -> float:
    test = frame[frame["holdout"]]
    auc = roc_auc_score(
        test["target"], model.predict_proba(test.drop(columns=["target", "holdout"]))[:, 1]
    )
    ferry.log_metric("roc_auc", auc)
    return float(auc)


@pipeline
def forest(data_ref: str = "breast-cancer@1", depth: int = 6):
    frame = prepare(data_ref)
    return score(train(frame, depth), frame)
