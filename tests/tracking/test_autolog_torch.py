"""ferryml.autolog_torch() on a real PyTorch training loop and a real store: what it logs,
where, and that it never breaks the training."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
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
def store(sqlite_fluent: Settings) -> Iterator[ferry.FerryClient]:
    """A client reading the fresh store the fluent API writes to."""
    client = ferry.FerryClient(sqlite_fluent)
    try:
        yield client
    finally:
        client.close()


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


def test_a_data_parallel_module_is_logged_unwrapped(store: ferry.FerryClient) -> None:
    model, _ = _setup()
    wrapped = torch.nn.DataParallel(model)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.01)
    with ferry.autolog_torch(wrapped, optimizer) as log:
        _train(log, wrapped, optimizer, 3)
    assert _only_run().data.params["module_class"] == f"{__name__}.TinyNet"
    assert type(ferry.load_model(f"runs:/{log.run_id}/model").raw.module) is TinyNet


_DDP_WORKER = """
import sys
import torch
import torch.distributed as dist
import ferryml as ferry

rank, init, store, home, artifacts = int(sys.argv[1]), *sys.argv[2:]
ferry.configure(home=home, store=store, artifacts=artifacts)
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
torch.manual_seed(rank)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with ferry.autolog_torch(model, optimizer) as log:
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(torch.randn(4, 2)).pow(2).mean()
        loss.backward()
        optimizer.step()
        log.step(loss)
print(log.run_id)
dist.barrier()  # rank 1 waits while rank 0 logs the module
dist.destroy_process_group()
"""


def test_distributed_training_is_one_run_logged_by_rank_0_with_a_loadable_module(
    store: ferry.FerryClient, tmp_path: Path
) -> None:
    settings = store.settings
    args = [f"file://{tmp_path}/ddp-init", settings.store_url, str(settings.home)]
    args.append(settings.artifacts_url)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _DDP_WORKER, str(rank), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    run = _only_run()
    assert [out.strip() for out, _ in outputs] == [run.info.run_id, "None"]
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params["module_class"] == "torch.nn.modules.linear.Linear"
    assert [step for step, _ in _history(store, run.info.run_id, "loss")] == [0, 1, 2]
    # no process group here: the DDP wrapper could not be loaded
    loaded = ferry.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded.raw.module) is torch.nn.Linear


def test_named_handles_log_two_loops_into_one_run_side_by_side(
    store: ferry.FerryClient,
) -> None:
    generator, optimizer_g = _setup()
    discriminator = torch.nn.Linear(1, 1)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=0.001)
    with (
        ferry.autolog_torch(generator, optimizer_g, name="generator") as g,
        ferry.autolog_torch(discriminator, optimizer_d, name="discriminator") as d,
    ):
        for n in range(3):
            g.step(torch.tensor(10.0 + n))
            d.step(torch.tensor(20.0 + n), accuracy=0.5)
        g.epoch()
        d.epoch()
    run = _only_run()
    assert g.run_id == d.run_id == run.info.run_id
    assert run.info.status is RunStatus.FINISHED
    assert _history(store, g.run_id, "generator/loss") == [(0, 10.0), (1, 11.0), (2, 12.0)]
    assert _history(store, g.run_id, "discriminator/loss") == [(0, 20.0), (1, 21.0), (2, 22.0)]
    assert _history(store, g.run_id, "discriminator/accuracy") == [(n, 0.5) for n in range(3)]
    assert _history(store, g.run_id, "generator/loss_epoch") == [(0, 11.0)]
    assert set(run.data.metrics) == {
        "generator/loss",
        "generator/loss_epoch",
        "discriminator/loss",
        "discriminator/loss_epoch",
        "discriminator/accuracy",
        "discriminator/accuracy_epoch",
    }
    params = run.data.params
    assert params["generator/module_class"] == f"{__name__}.TinyNet"
    assert params["generator/lr"] == "0.01"
    assert params["discriminator/module_class"] == "torch.nn.modules.linear.Linear"
    assert params["discriminator/optimizer_name"] == "Adam"
    assert params["discriminator/module_parameters"] == "2"
    assert "module_class" not in params
    loaded = ferry.load_model(f"runs:/{g.run_id}/generator/model")
    assert type(loaded.raw.module) is TinyNet
    loaded = ferry.load_model(f"runs:/{g.run_id}/discriminator/model")
    assert type(loaded.raw.module) is torch.nn.Linear


def test_a_second_handle_on_a_run_needs_a_name_of_its_own(store: ferry.FerryClient) -> None:
    model, _ = _setup()
    with ferry.start_run() as active:
        with ferry.autolog_torch(model, log_model=False) as first:
            with pytest.raises(ferry.Conflict, match=r"\.end\(\) or use `with`; for two"):
                ferry.autolog_torch(model)
            named = ferry.autolog_torch(model, log_model=False, name="d")
            with pytest.raises(ferry.Conflict, match=r"named .d. already: call its \.end\(\)"):
                ferry.autolog_torch(model, name="d")
            named.end()
            first.step(torch.tensor(1.0))
        again = ferry.autolog_torch(model, log_model=False)  # the first one has ended
        again.end()
    assert first.run_id == again.run_id == active.run_id
    assert _history(store, active.run_id, "loss") == [(0, 1.0)]


@pytest.mark.parametrize("name", ["", "../up", "a/b", "x y", 7])
def test_a_bad_name_is_refused_before_a_run_starts(store: ferry.FerryClient, name: Any) -> None:
    model, _ = _setup()
    with pytest.raises(ferry.InvalidArgument, match=f"name {name!r} is invalid: use up to"):
        ferry.autolog_torch(model, name=name)
    assert ferry.active_run() is None
    assert ferry.search_runs() == []


def test_a_tensor_is_logged_as_it_was_at_its_step(store: ferry.FerryClient) -> None:
    model, _ = _setup()
    correct = torch.zeros(())
    with ferry.autolog_torch(model, log_model=False) as log:
        for n in range(3):
            logits = torch.full((256, 1024), float(n))
            correct += 1  # in place: the same tensor each step
            log.step(logits.mean(), top=logits[0, 0], correct=correct)  # top: a view
            logits.fill_(-1.0)  # a buffer the loop reuses
    assert _history(store, log.run_id, "top") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert _history(store, log.run_id, "correct") == [(0, 1.0), (1, 2.0), (2, 3.0)]


class _Probe:
    """A metric value that notes when it is read."""

    def __init__(self, n: int, read: list[int]) -> None:
        self.n, self.read = n, read

    def __float__(self) -> float:
        self.read.append(self.n)
        return float(self.n)


def test_values_are_read_every_flush_every_steps_whatever_their_number(
    store: ferry.FerryClient,
) -> None:
    model, _ = _setup()
    read: list[int] = []
    with ferry.autolog_torch(model, log_model=False) as log:
        for n in range(FLUSH_EVERY - 1):
            log.step(torch.tensor(1.0), probe=_Probe(n, read), other=2.0)
        assert read == []
        log.step(torch.tensor(1.0), probe=_Probe(FLUSH_EVERY - 1, read), other=2.0)
        assert read == list(range(FLUSH_EVERY))


def test_steps_and_epochs_after_the_end_are_left_out_with_one_line(
    store: ferry.FerryClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ferryml.tracking.autolog")
    model, _ = _setup()
    with ferry.autolog_torch(model, log_model=False) as log:
        log.step(torch.tensor(1.0))
        log.epoch()
    for n in range(3):
        log.step(torch.tensor(5.0 + n))
    log.epoch()
    log.end()
    log.flush()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "ferry.autolog_torch: step() after the handle ended (its with block or end()) is not "
        "logged, nor are later ones. Call it inside the with block, or start a new handle."
    )
    assert (log.steps, log.epochs) == (1, 1)
    assert _history(store, log.run_id, "loss") == [(0, 1.0)]
    assert _history(store, log.run_id, "loss_epoch") == [(0, 1.0)]


@pytest.mark.filterwarnings("ignore:Lazy modules are a new feature:UserWarning")
def test_a_module_with_lazy_layers_logs_its_counts_once_they_are_known(
    store: ferry.FerryClient,
) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.LazyLinear(8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with ferry.autolog_torch(model, optimizer) as log:
        assert "optimizer_name" in ferry.get_run(log.run_id).data.params
        seen = _train(log, model, optimizer, 5)
    params = _only_run().data.params
    assert params["module_class"] == "torch.nn.modules.container.Sequential"
    assert params["module_parameters"] == str(4 * 8 + 8 + 8 + 1)
    assert params["module_trainable_parameters"] == params["module_parameters"]
    assert _history(store, log.run_id, "loss") == list(enumerate(seen))
    assert type(ferry.load_model(f"runs:/{log.run_id}/model").raw.module) is torch.nn.Sequential


def test_the_handle_type_is_public() -> None:
    import ferryml.tracking

    assert ferry.TorchAutolog is ferryml.tracking.TorchAutolog
    assert "TorchAutolog" in ferry.__all__
    assert "TorchAutolog" in ferryml.tracking.__all__


def test_without_torch_autolog_torch_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; import ferryml as ferry; "
        "ferry.autolog_torch(object())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ferryml.errors.MissingExtra: ferry.autolog_torch needs PyTorch, which is not "
        "installed: pip install 'ferryml[pytorch]' (or torch)."
    )
    assert "ModuleNotFoundError" not in done.stderr
