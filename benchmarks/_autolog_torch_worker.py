"""The PyTorch part of benchmarks/autolog.py, in one side's venv: torch, stdlib, and ferryml
or mlflow.

Usage: AUTOLOG_BENCH_SIDE=ferryml|mlflow python _autolog_torch_worker.py TMPDIR CONFIG_JSON
The same training loop (an MLP, 32 -> 64 -> 64 -> 1, batches of 32, SGD) runs plainly, then
logged, then plainly again. Logged, for ferryml: ``ferryml.autolog_torch`` (``log.step(loss)``
per step; ``hook``), and by hand (``ferryml.log_metric("loss", loss.item(), step=n)`` per
step; ``manual``); for mlflow: MLflow's documented recipe for a plain loop (its autolog needs
Lightning): ``mlflow.log_params`` of the same params, ``mlflow.log_metric("loss",
loss.item(), step=n)`` per step, ``mlflow.pytorch.log_model`` (pickled) at the end (``manual``).
Plain and logged loops alternate (the machine's load drifts). One JSON object per variant
on stdout, medians of the repeats: {"torch_<variant>": {"loop_plain": s, "loop": s,
"whole_plain": s, "whole": s, "cpu_plain": s, "cpu": s, "calls": s}}: ``loop`` is the loop
alone, ``whole`` adds the run's start, params, the model and the run's end, ``cpu`` is the
whole's user+sys time, ``calls`` the time spent inside the per-step logging calls.
"""

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
side, tmp, cfg = os.environ["AUTOLOG_BENCH_SIDE"], sys.argv[1], json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout

import torch  # noqa: E402 - after the path is cleaned

torch.set_num_threads(1)  # the machine is shared; one thread keeps the figures steady


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    print(f"[{side}] {key}: {value}", file=sys.stderr, flush=True)


def cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


X = torch.randn(1024, 32, generator=torch.Generator().manual_seed(0))
Y = X[:, :4].sum(dim=1, keepdim=True)


def loop(model: Any, optimizer: Any, on_step: Callable[[int, Any], None]) -> float:
    """The training loop; returns its wall time."""
    t = time.perf_counter()
    for n in range(cfg["steps"]):
        i = (n % 32) * 32
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X[i : i + 32]), Y[i : i + 32])
        loss.backward()
        optimizer.step()
        on_step(n, loss)
    return time.perf_counter() - t


class Timed:
    """The time spent inside a per-step call, summed."""

    def __init__(self, call: Callable[[int, Any], Any]) -> None:
        self.call, self.spent = call, 0.0

    def __call__(self, n: int, loss: Any) -> None:
        t = time.perf_counter()
        self.call(n, loss)
        self.spent += time.perf_counter() - t


calls: list[float] = []  # ``spent`` of each logged loop


def timed_loop(model: Any, optimizer: Any, call: Callable[[int, Any], Any]) -> float:
    on_step = Timed(call)
    took = loop(model, optimizer, on_step)
    calls.append(on_step.spent)
    return took


def plain() -> float:
    model, optimizer = setup()
    return loop(model, optimizer, Timed(lambda n, loss: None))


def params(model: Any, optimizer: Any) -> dict[str, str]:
    """What ferryml's hook logs, for MLflow's side to log the same."""
    kind = type(model)
    count = sum(p.numel() for p in model.parameters())
    return {
        "module_class": f"{kind.__module__}.{kind.__qualname__}",
        "module_parameters": str(count),
        "module_trainable_parameters": str(count),
        "optimizer_name": type(optimizer).__name__,
        **{k: str(v) for k, v in optimizer.defaults.items()},
    }


def ferry_hook() -> float:
    import ferryml

    model, optimizer = setup()
    with ferryml.autolog_torch(model, optimizer) as log:
        took = timed_loop(model, optimizer, lambda n, loss: log.step(loss))
    return took


def manual(lib: Any, log_model: Callable[[Any], Any]) -> float:
    """The loop logged by hand, the same calls on either side."""
    model, optimizer = setup()
    with lib.start_run():
        lib.log_params(params(model, optimizer))
        took = timed_loop(
            model, optimizer, lambda n, loss: lib.log_metric("loss", loss.item(), step=n)
        )
        log_model(model)
    return took


def ferry_manual() -> float:
    import ferryml

    return manual(ferryml, lambda model: ferryml.log_model(model, "model"))


def mlflow_manual() -> float:
    import mlflow

    # pickled, as ferryml saves an nn.Module (MLflow's default, pt2, needs an example)
    return manual(
        mlflow,
        lambda model: mlflow.pytorch.log_model(model, name="model", serialization_format="pickle"),
    )


def main() -> None:
    if side == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("autolog")
        variants = {"manual": mlflow_manual}
    else:
        import ferryml

        ferryml.set_experiment("autolog")
        variants = {"hook": ferry_hook, "manual": ferry_manual}
    plain()  # warm torch up
    for f in variants.values():
        f()  # and the side's first run (imports)
    for name, f in variants.items():
        loops: dict[str, list[float]] = {"plain": [], "auto": []}
        wholes: dict[str, list[float]] = {"plain": [], "auto": []}
        cpus: dict[str, list[float]] = {"plain": [], "auto": []}
        calls.clear()
        for _ in range(cfg["repeats"]):
            for block in ("plain", "auto"):
                c, t = cpu(), time.perf_counter()
                took = f() if block == "auto" else plain()
                wholes[block].append(time.perf_counter() - t)
                cpus[block].append(cpu() - c)
                loops[block].append(took)
        emit(
            f"torch_{name}",
            {
                "loop_plain": median(loops["plain"]),
                "loop": median(loops["auto"]),
                "whole_plain": median(wholes["plain"]),
                "whole": median(wholes["auto"]),
                "cpu_plain": median(cpus["plain"]),
                "cpu": median(cpus["auto"]),
                "calls": median(calls),
            },
        )


if __name__ == "__main__":
    main()
