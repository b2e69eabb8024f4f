"""The pointwise activations of the IR (workloads.graph.ACTIVATIONS) as PyTorch runs them.

`forward(op)` is the function a module's forward calls; `backward(op)` is the ATen call
autograd makes for the gradient, fed (dy, the saved tensor): the output for tanh and sigmoid,
the input for the others (as workloads.training saves them). Both are declared with the kind
(workloads/kinds/activations.py).
"""
from __future__ import annotations

from typing import Callable

import torch

from workloads.graph import ACTIVATIONS, Op, WorkloadError


def forward(op: Op) -> Callable[[torch.Tensor], torch.Tensor]:
    _check(op, "")
    return _kernel(op)(op, None)


def backward(op: Op) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    _check(op, "_grad")
    return _kernel(op)(op, None)


def _check(op: Op, suffix: str) -> None:
    kind = op.kind.removesuffix(suffix) if suffix else op.kind
    if kind not in ACTIVATIONS or not op.kind.endswith(suffix):
        raise WorkloadError(f"op {op.name!r}: {op.kind!r} is not an activation{suffix}")


def _kernel(op: Op) -> Callable:
    kernel = op.kind_record.torch_kernel
    if kernel is None:
        raise WorkloadError(f"{op.name}: op kind {op.kind!r} has no PyTorch kernel")
    return kernel
