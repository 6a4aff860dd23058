"""The closed loop's training pipeline: load a data version, fit a churn model, register it.

The retraining policy runs it again with the newest data version as ``data``."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import ferryml as ferry
import ferryml.data
from ferryml.pipelines import pipeline, step

NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "age"]
CATEGORICAL = ["contract"]
TARGET = "churned"


@step
def load(data: str) -> pd.DataFrame:
    return ferryml.data.load(data)


@step
def fit(frame: pd.DataFrame, c: float, model_name: str) -> int:
    """Fit and register the model; returns its version."""
    features = frame[NUMERIC + CATEGORICAL]
    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), NUMERIC), (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)
        ),
        LogisticRegression(C=c, max_iter=1000),
    ).fit(features, frame[TARGET])
    ferry.log_metric("train_accuracy", float(model.score(features, frame[TARGET])))
    info = ferry.log_model(
        model, input_example=features.head(), training_data=features,
        registered_model_name=model_name,
    )  # fmt: skip
    assert info.registered_model_version is not None
    return info.registered_model_version


@pipeline
def training(data: str = "churn-customers@1", c: float = 1.0, model_name: str = "churn"):
    return fit(load(data), c, model_name)
