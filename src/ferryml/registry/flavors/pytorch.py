"""PyTorch models: an ``nn.Module``, or a ``torch.export.ExportedProgram``.

Saving gets only the model, with no input example, and PyTorch 2.13 deprecates TorchScript
(``torch.jit.script``, ``save`` and ``load`` all warn), so:

- an ``ExportedProgram`` (``torch.export.export(model, (example,), dynamic_shapes=...)``)
  is saved with ``torch.export.save`` to ``model.pt2``: it loads without the model's class
  definition, and without pickle. This is the portable choice; export before logging.
- an ``nn.Module`` is saved whole with ``torch.save`` to ``model.pt`` (pickle): loading
  needs its class importable, as for scikit-learn. It is loaded on the CPU, in eval mode.

``predict(DataFrame)`` feeds the frame as one float32 tensor, under ``torch.no_grad()``,
and returns a numpy array.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ferryml.errors import InvalidArgument
from ferryml.registry.flavors import pin, require
from ferryml.registry.flavors.base import Predictor

__all__ = ["PyTorchFlavor"]

MODULE, EXPORTED = "model.pt", "model.pt2"


class _ModulePredictor:
    def __init__(self, module: Any) -> None:
        self.module = module

    def predict(self, data: Any) -> Any:
        torch = require("torch", "pytorch")
        inputs = torch.as_tensor(data.to_numpy(dtype="float32", copy=True))
        with torch.no_grad():
            return self.module(inputs).detach().cpu().numpy()


class PyTorchFlavor:
    """An ``nn.Module`` or an ``ExportedProgram``."""

    name = "pytorch"
    extra: str | None = "pytorch"

    def matches(self, model: Any) -> bool:
        torch, export = sys.modules.get("torch"), sys.modules.get("torch.export")
        return (torch is not None and isinstance(model, torch.nn.Module)) or (
            export is not None and isinstance(model, export.ExportedProgram)
        )

    def save(self, model: Any, folder: Path) -> None:
        torch = require("torch", "pytorch")
        if isinstance(model, torch.export.ExportedProgram):
            torch.export.save(model, folder / EXPORTED)
        elif isinstance(model, torch.jit.ScriptModule):
            raise InvalidArgument(
                "TorchScript modules are not saved: PyTorch deprecates TorchScript. Log the "
                "nn.Module itself, or torch.export.export(module, (example_input,))."
            )
        else:
            torch.save(model, folder / MODULE)

    def load(self, folder: Path) -> Predictor:
        torch = require("torch", "pytorch")
        if (folder / EXPORTED).exists():
            # an exported module keeps the mode it was exported in (it refuses .eval())
            return _ModulePredictor(torch.export.load(folder / EXPORTED).module())
        # weights_only=False unpickles the module's class: the file's digest was checked
        module = torch.load(folder / MODULE, map_location="cpu", weights_only=False)
        return _ModulePredictor(module.eval())

    def requirements(self) -> list[str]:
        return [pin("torch")]
