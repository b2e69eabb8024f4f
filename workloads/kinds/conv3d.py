"""3-D convolution (nn.Conv3d, F.conv3d) of (N, C, T, H, W) clips: video networks' kernels over
time and space (R3D's 3x3x3, R(2+1)D's 1x3x3 then 3x1x1). Each output value reads
Cin/groups x kt x kh x kw inputs, so its multiply-adds are N x Cout x To x Ho x Wo x
Cin/groups x kt x kh x kw, and its two gradients do as many: dx is a transposed convolution
of dy, dW a correlation of dy with x.

attrs: in_channels, out_channels, kernel, stride, padding, dilation (each (t, h, w)), groups,
bias, in_shape, out_shape. Costed as the matmul family's roofline (its FLOPs at the family's
efficiency, its traffic at the memory's): the device models' GEMM shapes and cuDNN algorithm
choices are those of 2-D convolutions, which a 3-D one does not share."""
from __future__ import annotations

import math

from . import backward_rules
from ._registry import OpKind, register
from ._torch import F
from .conv_transpose import convolution_gradient


def _macs(op) -> float:
    a = op.attrs
    n, cout, *out_pixels = a["out_shape"]
    return float(n * cout * math.prod(out_pixels) * (a["in_channels"] // a["groups"])
                 * math.prod(a["kernel"]))


def _flops(op) -> float:
    """Two per multiply-add, and the forward's bias added to each output value."""
    bias = op.kind == "conv3d" and op.attrs.get("bias")
    return 2.0 * op.macs + (op.out.numel if bias else 0)


def _params(op):
    a = op.attrs
    shapes = [(a["out_channels"], a["in_channels"] // a["groups"], *a["kernel"])]
    return shapes + ([(a["out_channels"],)] if a.get("bias") else [])


def _args(a):
    return list(a["stride"]), list(a["padding"]), list(a["dilation"])


def _kernel(op, state):
    """F.conv3d, or convolution_backward with the output mask of one gradient, as autograd
    calls it."""
    a = op.attrs
    w, *b = state.params_of(op)
    stride, padding, dilation = _args(a)
    if op.kind == "conv3d":
        bias = b[0] if b else None
        return lambda x: F.conv3d(x, w, bias, stride, padding, dilation, a["groups"])
    return convolution_gradient(op, state, w, b,
                                (stride, padding, dilation, False, [0, 0, 0], a["groups"]))


def _module(op, m, i):
    a = op.attrs
    stride, padding, dilation = _args(a)
    return lambda ins: F.conv3d(ins[0], m._p(i, 0), m._p(i, 1), stride, padding, dilation,
                                a["groups"])


register(
    OpKind("conv3d", "matmul", flops=_flops, macs=_macs, saves=("in",), reads_params=True,
           backward=backward_rules.input_and_weight, param_shapes=_params,
           torch_kernel=_kernel, torch_module=_module,
           doc="3-D convolution of (N, C, T, H, W) (attrs as conv2d, each a (t, h, w) triple)"),
    OpKind("conv3d_grad_input", "matmul_grad", "backward", flops=_flops, macs=_macs,
           reads_params=True, torch_kernel=_kernel),
    OpKind("conv3d_grad_weight", "matmul_grad", "backward", flops=_flops, macs=_macs,
           carries_params=True, torch_kernel=_kernel),
)
