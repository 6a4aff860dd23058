"""Autologging for plain PyTorch training loops: the loop hands each step's loss to a handle.

A plain loop has no ``fit`` to wrap, so the loop says where a step ends: one call,
``log.step(loss)``, after ``optimizer.step()``. Counting those calls numbers the steps, so
a step the optimizer skips (``GradScaler`` on an overflow) or several optimizers still give
one loss per step, and nothing is attached to the user's optimizer or module.

Example:
    >>> with ferryml.autolog_torch(model, optimizer) as log:
    ...     for epoch in range(3):
    ...         for x, y in batches:
    ...             optimizer.zero_grad()
    ...             loss = loss_fn(model(x), y)
    ...             loss.backward()
    ...             optimizer.step()
    ...             log.step(loss)  # metric ``loss`` at steps 0, 1, 2, ...
    ...         log.epoch()  # optional: ``loss_epoch``, the epoch's mean, at steps 0, 1, 2
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from types import TracebackType
from typing import Any

from ferryml.errors import Conflict, InvalidArgument, MissingExtra

__all__ = ["TorchAutolog", "autolog_torch"]

_log = logging.getLogger("ferryml.tracking.autolog")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # no "/" or "..": it names a folder
FLUSH_EVERY = 200  # steps held before one write (and one device sync) for all their values
FLUSH_AFTER_MS = 5_000  # ... or once this old, so a slow loop's curve shows up as it trains


def autolog_torch(
    module: Any,
    optimizer: Any = None,
    *,
    log_model: bool = True,
    registered_model_name: str | None = None,
    name: str | None = None,
) -> TorchAutolog:
    """Log a PyTorch training loop: call ``.step(loss)`` once per training step.

    Logs as params the optimizer's class (``optimizer_name``) and its hyperparameters
    (``optimizer.defaults``: ``lr``, ``momentum``, ...; a param group that differs adds
    ``param_group_<i>_<name>``), and the module's class (``module_class``) and parameter
    counts (``module_parameters``, ``module_trainable_parameters``). Each step's loss is
    metric ``loss``; keyword values given to ``.step`` are metrics of their own.
    ``.epoch()`` marks an epoch's end and logs each metric's mean over it as
    ``<key>_epoch``. At the end the module is logged as ``model`` (pytorch flavor) unless
    ``log_model`` is false, and registered as ``registered_model_name`` if given.

    ``name`` prefixes all of these, ``<name>/loss``, ``<name>/lr``, ``<name>/model``, so
    two loops (a GAN's generator and discriminator) can log into one run: each handle on
    a run needs a name of its own. A module wrapped by ``torch.compile``,
    ``DistributedDataParallel`` or ``DataParallel`` is logged unwrapped. When
    ``torch.distributed`` is initialized, only rank 0 logs (its own loss); the other
    ranks' handles do nothing and their ``run_id`` is None, so one training is one run.

    Inside an active run it logs there; otherwise it starts a run, which the ``with`` block
    ends: FINISHED, or FAILED when the loop raises (the error reaches the caller). Values
    are written every 200 steps or 5 seconds (a crash loses at most those), and a logging
    failure never stops the training: it is logged once (logger
    ``ferryml.tracking.autolog``) and the loop goes on. Steps and epochs after the end are
    left out, also logged once.

    Raises:
        MissingExtra: PyTorch is not installed.
        InvalidArgument: ``name`` is not a valid name.
        Conflict: a handle with the same ``name`` (or none) logs into the active run.
    """
    log = TorchAutolog(module, optimizer, log_model, registered_model_name, name)
    log.start()
    return log


class TorchAutolog:
    """What ``autolog_torch`` returns: ``step``, ``epoch``, ``end`` and a context manager."""

    def __init__(
        self,
        module: Any,
        optimizer: Any = None,
        log_model: bool = True,
        registered_model_name: str | None = None,
        name: str | None = None,
    ) -> None:
        if name is not None and not (isinstance(name, str) and _NAME.fullmatch(name)):
            raise InvalidArgument(
                f"autolog_torch name {name!r} is invalid: use up to 100 letters, digits, "
                "'_', '-' and '.', starting with a letter or digit (it prefixes the metric "
                "keys, params and the model's artifact path)."
            )
        self.module = module
        self.optimizer = optimizer
        self.log_model = log_model
        self.registered_model_name = registered_model_name
        self.name = name
        self._prefix = f"{name}/" if name else ""
        self.run_id: str | None = None  # None: not started, or the run could not be had
        self.steps = 0  # steps taken; the next one is logged at this step number
        self.epochs = 0
        self._client: Any = None
        self._started = False  # the run is ours to end
        self._ended = False
        self._warned = False
        self._warned_ended = False
        self._active: Any = None  # the fluent run this handle is registered with
        self._counts_due = False  # lazy parameters: their counts are logged at the end
        # (key, value, step, timestamp): values stay tensors until a flush reads them all
        # in one go, so a GPU loop does not wait for each step's loss.
        self._pending: list[tuple[str, Any, int, int]] = []
        self._held_steps = 0  # steps in _pending
        self._due = 0  # when, in ms since the epoch, the pending values are written
        self._loss_key = f"{self._prefix}loss"
        self._keys: set[str] = {self._loss_key}  # keys known to be valid
        self._sums: dict[str, list[float]] = {}  # this epoch's [sum, count] per key
        self._tensor: Any = None

    # -- the loop's calls --------------------------------------------------------------

    def step(self, loss: Any, **metrics: Any) -> None:
        """Record this step's ``loss`` (a tensor or a number), and any ``metrics``."""
        if self._ended:
            self._after_end("step")
            return
        n = self.steps
        self.steps = n + 1
        if self.run_id is None:
            return
        try:
            now = time.time_ns() // 1_000_000
            pending, tensor, prefix = self._pending, self._tensor, self._prefix
            # Copies: a view would keep its whole source tensor alive until the flush, and
            # a tensor changed in place later (``correct += ...``) would be read as it is
            # then, not at this step. A copy costs no device sync.
            held = loss.detach().clone() if isinstance(loss, tensor) else loss
            pending.append((self._loss_key, held, n, now))
            for key, value in metrics.items():
                key = prefix + key
                if key not in self._keys and not self._valid_key(key):
                    continue
                held = value.detach().clone() if isinstance(value, tensor) else value
                pending.append((key, held, n, now))
            self._held_steps += 1
            if self._held_steps >= FLUSH_EVERY or now >= self._due:
                self.flush()
        except Exception as e:  # noqa: BLE001 - logging never stops the training
            self._warn(e)

    def epoch(self) -> None:
        """Mark the end of an epoch: log each metric's mean over it as ``<key>_epoch``."""
        if self._ended:
            self._after_end("epoch")
            return
        n = self.epochs
        self.epochs = n + 1
        if self.run_id is None:
            return
        self.flush()
        try:
            from ferryml.store.entities import Metric

            rows = [
                Metric(f"{key}_epoch", total / count, None, n)  # type: ignore[arg-type]
                for key, (total, count) in self._sums.items()
                if count
            ]
            self._sums.clear()
            self._client.log_batch(self.run_id, metrics=rows)
        except Exception as e:  # noqa: BLE001 - logging never stops the training
            self._warn(e)

    def flush(self) -> None:
        """Write the values held so far (``step`` does it every 200 steps or 5 s)."""
        pending, self._pending = self._pending, []
        self._held_steps = 0
        self._due = time.time_ns() // 1_000_000 + FLUSH_AFTER_MS
        if not pending or self.run_id is None:
            return
        try:
            from ferryml.store.entities import Metric

            values = self._floats([v for _, v, _, _ in pending])
            rows = []
            sums = self._sums
            for (key, _, step, ts), value in zip(pending, values, strict=True):
                if value is None:
                    continue
                rows.append(Metric(key, value, ts, step))
                total = sums.get(key)
                if total is None:
                    sums[key] = [value, 1]
                else:
                    total[0] += value
                    total[1] += 1
            self._client.log_batch(self.run_id, metrics=rows)
        except Exception as e:  # noqa: BLE001 - logging never stops the training
            self._warn(e)

    def end(self) -> None:
        """Write what is held, log the module, and end the run if it was started here.
        The ``with`` block calls it; call it yourself when not using one."""
        self._finish(None)

    def __enter__(self) -> TorchAutolog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    # -- start and end -----------------------------------------------------------------

    def start(self) -> None:
        """Join the active run or start one, and log the params.

        Raises:
            MissingExtra: PyTorch is not installed.
            Conflict: a handle of the same name (or none) logs into the active run.
        """
        try:
            import torch
        except ModuleNotFoundError as e:
            if e.name != "torch":  # an installed torch that is broken: show why
                raise
            # from None: the message says it all, a second traceback would bury it
            raise MissingExtra(
                "ferry.autolog_torch needs PyTorch, which is not installed: "
                "pip install 'ferryml[pytorch]' (or torch)."
            ) from None

        from ferryml.tracking import fluent

        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return  # rank 0 logs the training; a run per process would split it
        self._tensor = torch.Tensor
        self._due = time.time_ns() // 1_000_000 + FLUSH_AFTER_MS
        active = fluent.active_run()
        if active is not None:
            self._register(active)
        try:
            self._client = fluent._fluent.get_client()
            if active is None:
                active = fluent.start_run(tags={"ferryml.autolog": "pytorch"})
                self._started = True
                self._register(active)
            self.run_id = active.run_id
        except Exception as e:  # noqa: BLE001 - logging never stops the training
            self._warn(e)
            return
        try:
            self._client.log_batch(self.run_id, params=self._params())
        except Exception as e:  # noqa: BLE001 - logging never stops the training
            self._warn(e)

    def _finish(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        self.flush()
        if self._active is not None and self._active._autologs.get(self._prefix) is self:
            del self._active._autologs[self._prefix]
        if self.run_id is None:
            return
        if self._counts_due:  # the lazy parameters are known by now, after a forward pass
            try:
                counts = _counts(_unwrapped(self.module))
                if counts is not None:
                    self._client.log_batch(self.run_id, params=self._prefixed(counts))
            except Exception as e:  # noqa: BLE001 - the training's result stands
                self._warn(e)
        if error is None and self.log_model:
            try:
                from ferryml.registry.api import log_model

                log_model(
                    _unwrapped(self.module),
                    f"{self._prefix}model",
                    registered_model_name=self.registered_model_name,
                )
            except Exception as e:  # noqa: BLE001 - the training's result stands
                self._warn(e)
        if not self._started:
            return
        from ferryml.store.entities import RunStatus
        from ferryml.tracking import fluent

        try:
            if error is None:
                fluent.end_run(RunStatus.FINISHED)
            elif isinstance(error, KeyboardInterrupt):
                fluent.end_run(RunStatus.KILLED, failure="Interrupted (KeyboardInterrupt).")
            else:
                failure = traceback.format_exception(type(error), error, error.__traceback__)
                fluent.end_run(RunStatus.FAILED, failure="".join(failure)[-8000:])
        except Exception as e:  # noqa: BLE001 - the training's result (or error) stands
            self._warn(e)

    # -- helpers -----------------------------------------------------------------------

    def _register(self, active: Any) -> None:
        """Claim this handle's name on the fluent run ``active``, or refuse it."""
        other = active._autologs.get(self._prefix)
        if other is not None and not other._ended:
            if self.name is None:
                raise Conflict(
                    f"Run {active.run_id} has a ferry.autolog_torch handle already; a second "
                    "one would log its loss, params and model under the same names. If the "
                    "first is done (a cell run again), call its .end() or use `with`; for two "
                    "loops at once give each its own name, e.g. autolog_torch(discriminator, "
                    "optimizer, name='discriminator')."
                )
            raise Conflict(
                f"Run {active.run_id} has a ferry.autolog_torch handle named {self.name!r} "
                "already: call its .end() (or use `with`) if it is done, or give this one "
                "another name."
            )
        active._autologs[self._prefix] = self
        self._active = active

    def _params(self) -> dict[str, str]:
        module = _unwrapped(self.module)
        kind = type(module)
        params: dict[str, Any] = {"module_class": f"{kind.__module__}.{kind.__qualname__}"}
        counts = _counts(module)
        if counts is None:
            self._counts_due = True
        else:
            params.update(counts)
        optimizer = self.optimizer
        if optimizer is not None:
            params["optimizer_name"] = type(optimizer).__name__
            defaults = dict(getattr(optimizer, "defaults", {}))
            params.update(defaults)
            for i, group in enumerate(getattr(optimizer, "param_groups", [])):
                for key, value in group.items():
                    if key in defaults and str(value) != str(defaults[key]):
                        params[f"param_group_{i}_{key}"] = value
        return self._prefixed(params)

    def _prefixed(self, params: dict[str, Any]) -> dict[str, str]:
        """``params`` under this handle's keys, as strings; keys a run cannot take are
        left out (an optimizer's own hyperparameter names)."""
        from ferryml.tracking._validation import _KEY, MAX_KEY, MAX_PARAM_VALUE

        prefix = self._prefix
        return {
            prefix + key: str(value)[:MAX_PARAM_VALUE]
            for key, value in params.items()
            if len(prefix + key) <= MAX_KEY and _KEY.fullmatch(key)
        }

    def _floats(self, values: list[Any]) -> list[float | None]:
        """The values as floats, reading all the tensors in one go (one device sync)."""
        import torch

        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        read: list[Any] = []
        if tensors:
            try:
                read = torch.cat([t.reshape(-1) for t in tensors]).double().tolist()
            except (RuntimeError, TypeError, ValueError):  # on several devices
                read = tensors
            if len(read) != len(tensors):  # a tensor of several values: each on its own
                read = tensors
        it = iter(read)
        out: list[float | None] = []
        for value in values:
            if isinstance(value, torch.Tensor):
                value = next(it)
            if type(value) is float:
                out.append(value)
                continue
            try:
                out.append(float(value))
            except (TypeError, ValueError, RuntimeError) as e:  # not a number, or no scalar
                out.append(None)
                self._warn(e)
        return out

    def _valid_key(self, key: str) -> bool:
        from ferryml.tracking._validation import check_key

        try:
            check_key(key, "metric")
        except Exception as e:  # noqa: BLE001 - the metric is left out, training goes on
            self._warn(e)
            return False
        self._keys.add(key)
        return True

    def _after_end(self, call: str) -> None:
        if self._warned_ended:
            return
        self._warned_ended = True
        # A log line, not an error: the training itself is fine.
        _log.warning(
            "ferry.autolog_torch: %s() after the handle ended (its with block or end()) is "
            "not logged, nor are later ones. Call it inside the with block, or start a new "
            "handle.",
            call,
        )

    def _warn(self, error: BaseException) -> None:
        """Once per handle; later failures go to the debug log only."""
        _log.debug("ferryml.autolog_torch could not log", exc_info=error)
        if self._warned:
            return
        self._warned = True
        # A log line, not a warning: code run with warnings as errors would stop training.
        _log.warning(
            "ferryml.autolog_torch could not log (%s: %s); training goes on. Further "
            "failures of this loop's logging are not shown.",
            type(error).__name__,
            error,
        )


def _unwrapped(module: Any) -> Any:
    """The module itself, not a wrapper around it: ``torch.compile``'s, ``DataParallel``'s
    or ``DistributedDataParallel``'s (which cannot be loaded without its process group)."""
    import torch

    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(module, wrappers):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def _counts(module: Any) -> dict[str, int] | None:
    """The module's parameter counts; None while a lazy layer (``nn.LazyLinear``) has not
    seen its first batch, as its parameters have no size yet."""
    from torch.nn.parameter import is_lazy

    parameters = list(module.parameters())
    if any(is_lazy(p) for p in parameters):
        return None
    return {
        "module_parameters": sum(p.numel() for p in parameters),
        "module_trainable_parameters": sum(p.numel() for p in parameters if p.requires_grad),
    }
