"""ferryml.autolog_torch() on a real PyTorch training loop and a real store: what it logs,
where, and that it never breaks the training."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import ferryml as ferry
from ferryml.config import Settings
from ferryml.store.entities import Run, RunStatus
from ferryml.tracking._autolog_torch import FLUSH_EVERY


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.out = torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


class LockedNet(TinyNet):
    """A module that cannot be saved: logging it fails, the training must not."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


@pytest.fixture
def store(
    tmp_path: Path, request: pytest.FixtureRequest, make_store: Callable[..., Any]
) -> Iterator[ferry.FerryClient]:
    """The fluent API pointed at a fresh SQLite store, and a client reading that store."""
    with make_store("sqlite", tmp_path, request) as url:
        settings = Settings(
            home=tmp_path / "home", store_url=url, artifacts_url=(tmp_path / "art").as_uri()
        )
        ferry.configure(home=settings.home, store=url, artifacts=settings.artifacts_url)
        client = ferry.FerryClient(settings)
        try:
            yield client
        finally:
            client.close()
            while ferry.active_run() is not None:
                ferry.end_run()
            ferry.configure(home=settings.home, store=url, artifacts=settings.artifacts_url)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    return x, x.sum(dim=1, keepdim=True)


def _train(
    log: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    steps_per_epoch: int = 0,
    fail_at: int = -1,
) -> list[float]:
    """A plain loop over 8-row batches; returns each step's loss as the loop saw it."""
    x, y = _data()
    seen = []
    for n in range(steps):
        if n == fail_at:
            raise ValueError(f"bad batch {n}")
        i = (n % 8) * 8
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[i : i + 8]), y[i : i + 8])
        loss.backward()
        optimizer.step()
        log.step(loss)
        seen.append(loss.item())
        if steps_per_epoch and (n + 1) % steps_per_epoch == 0:
            log.epoch()
    return seen


def _setup() -> tuple[TinyNet, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = TinyNet()
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def _history(client: ferry.FerryClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def _only_run() -> Run:
    (run,) = ferry.search_runs()
    return run


def test_a_loop_outside_a_run_logs_each_steps_loss_params_and_the_module(
    store: ferry.FerryClient,
) -> None:
    model, optimizer = _setup()
    steps = FLUSH_EVERY * 2 + 37  # several writes, and a partial one at the end
    with ferry.autolog_torch(model, optimizer) as log:
        seen = _train(log, model, optimizer, steps)
    assert ferry.active_run() is None
    run = _only_run()
    assert run.info.run_id == log.run_id
    assert run.info.status is RunStatus.FINISHED
    assert run.data.tags["ferryml.autolog"] == "pytorch"
    assert _history(store, log.run_id, "loss") == list(enumerate(seen))
    params = run.data.params
    assert params["optimizer_name"] == "SGD"
    assert params["lr"] == "0.01"
    assert params["momentum"] == "0.9"
    assert params["module_class"] == f"{__name__}.TinyNet"
    assert params["module_parameters"] == str(4 * 8 + 8 + 8 + 1)
    assert params["module_trainable_parameters"] == params["module_parameters"]
    loaded = ferry.load_model(f"runs:/{log.run_id}/model")
    assert loaded.flavor == "pytorch"
    x, _ = _data()
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(loaded.raw.module(x), expected)  # the same weights
    predicted = loaded.predict(pd.DataFrame(x.numpy()))  # from a column-major copy
    assert predicted == pytest.approx(expected.numpy(), abs=1e-6)


def test_epochs_log_the_mean_loss_of_each_epoch(store: ferry.FerryClient) -> None:
    model, optimizer = _setup()
    with ferry.autolog_torch(model, optimizer, log_model=False) as log:
        seen = _train(log, model, optimizer, 30, steps_per_epoch=10)
    means = [sum(seen[e * 10 : e * 10 + 10]) / 10 for e in range(3)]
    epochs = _history(store, log.run_id, "loss_epoch")
    assert [step for step, _ in epochs] == [0, 1, 2]
    assert [value for _, value in epochs] == pytest.approx(means)
    assert "model" not in {a.path for a in store.list_artifacts(log.run_id)}


def test_keyword_values_of_a_step_are_metrics_of_their_own(store: ferry.FerryClient) -> None:
    model, _ = _setup()
    with ferry.autolog_torch(model, log_model=False) as log:
        for n in range(5):
            log.step(torch.tensor(1.0 / (n + 1)), accuracy=n / 10, lr=torch.tensor(0.5))
        log.epoch()
    assert _history(store, log.run_id, "accuracy") == [(n, n / 10) for n in range(5)]
    assert _history(store, log.run_id, "lr") == [(n, 0.5) for n in range(5)]
    ((step, mean),) = _history(store, log.run_id, "accuracy_epoch")
    assert (step, mean) == (0, pytest.approx(0.2))
    assert "optimizer_name" not in ferry.get_run(log.run_id).data.params


def test_a_loop_inside_an_active_run_logs_there_and_leaves_it_running(
    store: ferry.FerryClient,
) -> None:
    model, optimizer = _setup()
    with ferry.start_run() as active:
        with ferry.autolog_torch(model, optimizer) as log:
            seen = _train(log, model, optimizer, 20)
        assert log.run_id == active.run_id
        assert ferry.get_run(active.run_id).info.status is RunStatus.RUNNING
    run = _only_run()
    assert run.info.status is RunStatus.FINISHED
    assert "ferryml.autolog" not in run.data.tags
    assert _history(store, active.run_id, "loss") == list(enumerate(seen))
    assert ferry.load_model(f"runs:/{active.run_id}/model").flavor == "pytorch"


def test_a_raising_loop_fails_its_run_keeps_the_losses_and_reaches_the_caller(
    store: ferry.FerryClient,
) -> None:
    model, optimizer = _setup()
    log = ferry.autolog_torch(model, optimizer)
    with pytest.raises(ValueError, match="bad batch 12"), log:
        _train(log, model, optimizer, 20, fail_at=12)
    assert ferry.active_run() is None
    run = _only_run()
    assert run.info.status is RunStatus.FAILED
    assert "ValueError: bad batch 12" in (run.info.failure or "")
    assert [step for step, _ in _history(store, log.run_id, "loss")] == list(range(12))
    assert store.list_artifacts(log.run_id, "model") == []


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "autolog_torch could not" in r.getMessage()]


def test_a_module_that_cannot_be_saved_does_not_break_the_training(
    store: ferry.FerryClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    torch.manual_seed(0)
    model = LockedNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # code run with warnings as errors still trains
        with ferry.autolog_torch(model, optimizer) as log:
            seen = _train(log, model, optimizer, 10)
    (failure,) = _failures(caplog)
    assert "training goes on" in failure
    run = _only_run()
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params["betas"] == "(0.9, 0.999)"
    assert _history(store, log.run_id, "loss") == list(enumerate(seen))


def test_bad_values_and_conflicting_params_are_left_out_and_training_goes_on(
    store: ferry.FerryClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    model, optimizer = _setup()
    with ferry.start_run() as active:
        ferry.log_param("lr", "other")  # the optimizer's lr conflicts with it
        with ferry.autolog_torch(model, optimizer, log_model=False) as log:
            log.step(torch.tensor(3.0), note="not a number", **{"bad key!": 1.0})
            log.step(torch.ones(2))  # not one value
            log.step(torch.tensor(1.0))
    assert len(_failures(caplog)) == 1  # shown once per loop
    assert "Conflict" in _failures(caplog)[0]
    run = ferry.get_run(active.run_id)
    assert run.data.params["lr"] == "other"
    assert _history(store, active.run_id, "loss") == [(0, 3.0), (2, 1.0)]
    assert set(run.data.metrics) == {"loss"}


def test_autolog_alone_does_not_import_torch() -> None:
    code = (
        "import sys, ferryml; ferryml.autolog(); "
        "from sklearn.linear_model import LogisticRegression; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
