"""A registered model and a real server on a free port of 127.0.0.1, stopped after."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
from serving_net import free_port
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ferryml as ferry
from ferryml.config import Settings
from ferryml.server.main import NoDelayHttp


@dataclass
class Registered:
    X: pd.DataFrame
    y: pd.Series
    good: Any
    settings: Settings


@pytest.fixture
def registered(sqlite_settings: Settings) -> Iterator[Registered]:
    """Model 'cancer': version 1 a fitted pipeline (alias champion), version 2 a dummy."""
    ferry.configure(
        home=sqlite_settings.home,
        store=sqlite_settings.store_url,
        artifacts=sqlite_settings.artifacts_url,
    )
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    good = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    for model in (good, DummyClassifier(strategy="constant", constant=1).fit(X, y)):
        with ferry.start_run():
            ferry.log_model(model, input_example=X.head(), registered_model_name="cancer")
    ferry.set_registered_model_alias("cancer", "champion", 1)
    yield Registered(X, y, good, sqlite_settings)
    ferry.configure(home=sqlite_settings.home)


@dataclass
class Running:
    url: str
    client: httpx.Client
    app: Any


@pytest.fixture
def serve() -> Iterator[Callable[[Any], Running]]:
    """Start an app on uvicorn in a thread; every server started is stopped after."""
    servers: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(app: Any) -> Running:
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, http=NoDelayHttp, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        servers.append((server, thread, client))
        return Running(f"http://127.0.0.1:{port}", client, app)

    yield start
    for server, thread, client in servers:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
