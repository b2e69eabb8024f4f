"""Transposed convolution (nn.ConvTranspose2d): the gradient of a convolution with respect to
its input, run forward. Each input pixel scatters a kh x kw window into every output channel
of its group, so its multiply-adds are N x Cin x Hin x Win x Cout/groups x kh x kw, and its
two gradients do as many: dx is a convolution of dy, dW a correlation of dy with x.

attrs: in_channels, out_channels, kernel, stride, padding, output_padding, dilation, groups,
bias, in_shape, out_shape. Costed as the matmul family's roofline until the device models know
its GEMM shapes (like the batched products)."""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, register
from ._torch import F, aten


def _macs(op) -> float:
    a = op.attrs
    n, cin, h, w = a["in_shape"]
    kh, kw = a["kernel"]
    return float(n * cin * h * w * (a["out_channels"] // a["groups"]) * kh * kw)


def _flops(op) -> float:
    flops = 2.0 * op.macs
    if op.kind == "conv_transpose2d" and op.attrs.get("bias"):
        flops += op.out.numel
    return flops


def _params(op):
    a = op.attrs
    kh, kw = a["kernel"]
    shapes = [(a["in_channels"], a["out_channels"] // a["groups"], kh, kw)]
    return shapes + ([(a["out_channels"],)] if a.get("bias") else [])


def _args(a):
    return (list(a["stride"]), list(a["padding"]), list(a["dilation"]))


def convolution_gradient(op, state, w, b, bwd):
    """convolution_backward with the output mask of one gradient, as autograd calls it: the
    input's (a `*_grad_input` kind; x read for its shape only) or the weight's and bias's.
    bwd: its (stride, padding, dilation, transposed, output_padding, groups)."""
    owner = op.forward or op.name
    if op.kind.endswith("_grad_input"):
        x_shape = state.placeholder(op.attrs["in_shape"])
        return lambda dy: aten.convolution_backward(dy, x_shape, w, None, *bwd,
                                                    [True, False, False])[0]

    def grad_weight(dy, x):
        _, gw, gb = aten.convolution_backward(dy, x, w, list(b[0].shape) if b else None,
                                              *bwd, [False, True, bool(b)])
        state.grads[owner] = [gw, gb] if b else [gw]
        return gw
    return grad_weight


def _kernel(op, state):
    """F.conv_transpose2d, or convolution_backward (transposed) with one gradient's mask."""
    a = op.attrs
    w, *b = state.params_of(op)
    stride, padding, dilation = _args(a)
    if op.kind == "conv_transpose2d":
        bias = b[0] if b else None
        return lambda x: F.conv_transpose2d(x, w, bias, stride, padding,
                                            list(a["output_padding"]), a["groups"], dilation)
    return convolution_gradient(op, state, w, b, (stride, padding, dilation, True,
                                                  list(a["output_padding"]), a["groups"]))


def _module(op, m, i):
    a = op.attrs
    stride, padding, dilation = _args(a)
    return lambda ins: F.conv_transpose2d(ins[0], m._p(i, 0), m._p(i, 1), stride, padding,
                                          list(a["output_padding"]), a["groups"], dilation)


register(
    OpKind("conv_transpose2d", "matmul", flops=_flops, macs=_macs, saves=("in",),
           reads_params=True, backward=backward_rules.input_and_weight, param_shapes=_params,
           torch_kernel=_kernel, torch_module=_module,
           doc="2-D transposed convolution (attrs as conv2d, and output_padding)"),
    OpKind("conv_transpose2d_grad_input", "matmul_grad", "backward", flops=_flops, macs=_macs,
           reads_params=True, torch_kernel=_kernel),
    OpKind("conv_transpose2d_grad_weight", "matmul_grad", "backward", flops=_flops,
           macs=_macs, carries_params=True, torch_kernel=_kernel),
)
