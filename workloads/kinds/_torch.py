"""PyTorch for the kinds' kernels, imported on first use: the IR itself runs without PyTorch."""
from __future__ import annotations

import importlib


class _Lazy:
    """A module (or torch.ops.aten) whose attributes resolve on first access and are then
    kept, so a kernel's calls cost what a module attribute costs."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str):
        if self._path == "torch.ops.aten":
            target = importlib.import_module("torch").ops.aten
        else:
            target = importlib.import_module(self._path)
        value = getattr(target, name)
        setattr(self, name, value)
        return value


torch = _Lazy("torch")
F = _Lazy("torch.nn.functional")
aten = _Lazy("torch.ops.aten")
