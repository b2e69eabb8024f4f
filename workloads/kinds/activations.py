"""Pointwise activations besides ReLU, each with its gradient `<kind>_grad`: the attributes
they take with PyTorch's defaults (nn.ReLU6 is a hardtanh from 0 to 6), nominal FLOPs per
element (an exp, a tanh or an erf as a few FLOPs; a calibrated profile measures what each
really costs), and the function a module calls and the ATen backward autograd calls, fed
(dy, the saved tensor): the output for tanh and sigmoid, the input for the others."""
from __future__ import annotations

from typing import Callable

from ._registry import OpKind, per_element, register
from ._torch import F, aten, torch

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

# kind: (attributes with defaults, forward FLOPs, gradient FLOPs, forward(attrs),
#        backward(attrs))
_ACTIVATIONS: dict[str, tuple[dict, float, float, Callable, Callable]] = {
    "tanh": ({}, 6.0, 3.0, lambda a: torch.tanh, lambda a: aten.tanh_backward),
    "sigmoid": ({}, 5.0, 3.0, lambda a: torch.sigmoid, lambda a: aten.sigmoid_backward),
    "silu": ({}, 6.0, 8.0, lambda a: F.silu, lambda a: aten.silu_backward),
    "hardswish": ({}, 4.0, 4.0, lambda a: F.hardswish, lambda a: aten.hardswish_backward),
    "hardtanh": ({"min_val": -1.0, "max_val": 1.0}, 2.0, 2.0,
                 lambda a: lambda x: F.hardtanh(x, a["min_val"], a["max_val"]),
                 lambda a: lambda dy, x: aten.hardtanh_backward(dy, x, a["min_val"],
                                                                a["max_val"])),
    "leaky_relu": ({"negative_slope": 0.01}, 2.0, 2.0,
                   lambda a: lambda x: F.leaky_relu(x, a["negative_slope"]),
                   lambda a: lambda dy, x: aten.leaky_relu_backward(dy, x,
                                                                    a["negative_slope"],
                                                                    False)),
    "elu": ({"alpha": 1.0}, 5.0, 4.0, lambda a: lambda x: F.elu(x, a["alpha"]),
            lambda a: lambda dy, x: aten.elu_backward(dy, a["alpha"], 1, 1, False, x)),
    "gelu": ({"approximate": "none"}, 10.0, 12.0,
             lambda a: lambda x: F.gelu(x, approximate=a["approximate"]),
             lambda a: lambda dy, x: aten.gelu_backward(dy, x, approximate=a["approximate"])),
    "hardsigmoid": ({}, 3.0, 2.0, lambda a: F.hardsigmoid,
                    lambda a: aten.hardsigmoid_backward),
    "mish": ({}, 12.0, 15.0, lambda a: F.mish, lambda a: aten.mish_backward),
    # SELU is an ELU scaled outside and inside (PyTorch computes it with elu)
    "selu": ({}, 6.0, 5.0, lambda a: F.selu,
             lambda a: lambda dy, x: aten.elu_backward(dy, _SELU_ALPHA, _SELU_SCALE, 1, False,
                                                       x)),
    "softplus": ({"beta": 1.0, "threshold": 20.0}, 6.0, 4.0,
                 lambda a: lambda x: F.softplus(x, a["beta"], a["threshold"]),
                 lambda a: lambda dy, x: aten.softplus_backward(dy, x, a["beta"],
                                                                a["threshold"])),
}


def _kernel(make):
    return lambda op, state: make(op.attrs)


for _name, (_attrs, _fwd_flops, _grad_flops, _forward, _backward) in _ACTIVATIONS.items():
    register(
        OpKind(_name, "elementwise", flops=per_element(_fwd_flops), attr_defaults=_attrs,
               saves=("out",) if _name in ("tanh", "sigmoid") else ("in",),
               torch_kernel=_kernel(_forward), doc=f"the {_name} activation"),
        OpKind(f"{_name}_grad", "elementwise", "backward", flops=per_element(_grad_flops),
               torch_kernel=_kernel(_backward)),
    )
