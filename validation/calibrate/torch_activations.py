"""The pointwise activations of the IR (workloads.graph.ACTIVATIONS) as PyTorch runs them.

`forward(op)` is the function a module's forward calls; `backward(op)` is the ATen call
autograd makes for the gradient, fed (dy, the saved tensor): the output for tanh and sigmoid,
the input for the others (as workloads.training saves them).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from workloads.graph import ACTIVATIONS, Op, WorkloadError

aten = torch.ops.aten
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


# kind -> the forward function of the op's attributes, and autograd's backward
_FORWARD = {
    "tanh": lambda a: torch.tanh,
    "sigmoid": lambda a: torch.sigmoid,
    "silu": lambda a: F.silu,
    "hardswish": lambda a: F.hardswish,
    "hardtanh": lambda a: lambda x: F.hardtanh(x, a["min_val"], a["max_val"]),
    "leaky_relu": lambda a: lambda x: F.leaky_relu(x, a["negative_slope"]),
    "elu": lambda a: lambda x: F.elu(x, a["alpha"]),
    "gelu": lambda a: lambda x: F.gelu(x, approximate=a["approximate"]),
    "hardsigmoid": lambda a: F.hardsigmoid,
    "mish": lambda a: F.mish,
    "selu": lambda a: F.selu,
    "softplus": lambda a: lambda x: F.softplus(x, a["beta"], a["threshold"]),
}
_BACKWARD = {
    "tanh": lambda a: aten.tanh_backward,
    "sigmoid": lambda a: aten.sigmoid_backward,
    "silu": lambda a: aten.silu_backward,
    "hardswish": lambda a: aten.hardswish_backward,
    "hardtanh": lambda a: lambda dy, x: aten.hardtanh_backward(dy, x, a["min_val"],
                                                               a["max_val"]),
    "leaky_relu": lambda a: lambda dy, x: aten.leaky_relu_backward(dy, x, a["negative_slope"],
                                                                   False),
    "elu": lambda a: lambda dy, x: aten.elu_backward(dy, a["alpha"], 1, 1, False, x),
    "gelu": lambda a: lambda dy, x: aten.gelu_backward(dy, x, approximate=a["approximate"]),
    "hardsigmoid": lambda a: aten.hardsigmoid_backward,
    "mish": lambda a: aten.mish_backward,
    # SELU is an ELU scaled outside and inside (PyTorch computes it with elu)
    "selu": lambda a: lambda dy, x: aten.elu_backward(dy, _SELU_ALPHA, _SELU_SCALE, 1, False, x),
    "softplus": lambda a: lambda dy, x: aten.softplus_backward(dy, x, a["beta"],
                                                               a["threshold"]),
}


def forward(op: Op) -> Callable[[torch.Tensor], torch.Tensor]:
    return _FORWARD[_kind(op, "")](op.attrs)


def backward(op: Op) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return _BACKWARD[_kind(op, "_grad")](op.attrs)


def _kind(op: Op, suffix: str) -> str:
    kind = op.kind.removesuffix(suffix) if suffix else op.kind
    if kind not in ACTIVATIONS or not op.kind.endswith(suffix):
        raise WorkloadError(f"op {op.name!r}: {op.kind!r} is not an activation{suffix}")
    return kind
