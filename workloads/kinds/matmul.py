"""Convolutions and linear layers: their multiply-adds, GEMM shapes, parameters and kernels.

Why GEMM shapes: libraries run convolutions and fully connected layers as (implicit) GEMMs,
and how close a GEMM gets to peak depends on each of its three dimensions, not only on its
FLOPs; a calibrated profile keys these kinds on (m, n, k, groups, window, stride, pixels)
(hwmodels/families.gemm_shape).
"""
from __future__ import annotations

import math

from . import backward_rules
from ._registry import GemmRole, OpKind, register
from ._torch import F, aten, torch


def conv_macs(op) -> float:
    """Multiply-adds of a convolution pass (the same for the forward and both gradients)."""
    a = op.attrs
    n, cout, ho, wo = a["out_shape"]  # forward output (N, Cout, Ho, Wo)
    kh, kw = a["kernel"]
    return float(n * cout * ho * wo * (a["in_channels"] // a["groups"]) * kh * kw)


def linear_macs(op) -> float:
    a = op.attrs
    return float(a["batch_rows"] * a["in_features"] * a["out_features"])


def _flops_with_bias(op) -> float:
    flops = 2.0 * op.macs
    if op.attrs.get("bias"):
        flops += op.out.numel
    return flops


def gemm_flops(op) -> float:
    return 2.0 * op.macs


# attrs["memory_format"] of a convolution run on channels-last maps (workloads/memory_format.py;
# not imported: it imports the graph, which imports the kinds). Why per op: PyTorch picks
# each convolution's format from its input's strides, and oneDNN runs other kernels on
# channels-last maps (a depthwise 7x7's weight gradient 2-4x faster, docs/cpu-model.md)
CHANNELS_LAST = "nhwc"


def is_channels_last(op) -> bool:
    return op.attrs.get("memory_format") == CHANNELS_LAST


def mark_channels_last(graph, name: str) -> None:
    """Record that PyTorch runs the convolution `name` (and so its gradients, which inherit
    its attributes) on channels-last maps."""
    graph.op(name).attrs["memory_format"] = CHANNELS_LAST


def _conv_gemm(which: str):
    """(m, n, k, groups, window, stride, pixels) of a convolution pass: m rows (output
    positions), n columns, k the reduction, per group; window and stride areas, pixels per
    sample (a strided or 1x1 convolution may take another algorithm than a 3x3 of one GEMM);
    then a 1 for a convolution run on channels-last maps (an NCHW one has 7 numbers)."""
    def shape(op):
        a = op.attrs
        n_batch, c_in, h_in, w_in = a["in_shape"]
        _, c_out, h_out, w_out = a["out_shape"]
        g = int(a.get("groups", 1))
        kh, kw = a["kernel"]
        sh, sw = a["stride"]
        pixels = h_in * w_in if which == "grad_input" else h_out * w_out
        tail = (g, kh * kw, sh * sw, pixels, *((1,) if is_channels_last(op) else ()))
        if which == "forward":
            return (n_batch * h_out * w_out, c_out // g, c_in // g * kh * kw, *tail)
        if which == "grad_input":
            return (n_batch * h_in * w_in, c_in // g, c_out // g * kh * kw, *tail)
        return (c_out // g, c_in // g * kh * kw, n_batch * h_out * w_out, *tail)
    return shape


def linear_dims(which: str):
    """(m, n, k, batch) of a linear layer's pass: the rows by the output features over the
    input features; dy by W; dy^T by x, reduced over the rows."""
    def dims(op):
        a = op.attrs
        rows, n_in, n_out = a["batch_rows"], a["in_features"], a["out_features"]
        m, n, k = {"forward": (rows, n_out, n_in), "grad_input": (rows, n_in, n_out),
                   "grad_weight": (n_out, n_in, rows)}[which]
        return m, n, k, 1
    return dims


def linear_gemm_shape(which: str):
    dims = linear_dims(which)
    return lambda op: (*dims(op)[:3], 1, 1, 1, 1)


def _linear_role(which: str) -> GemmRole:
    return GemmRole("blas", which, linear_dims(which), weights=True)


def _conv_role(which: str) -> GemmRole:
    return GemmRole("conv", which, weights=True)


def _conv_params(op):
    a = op.attrs
    kh, kw = a["kernel"]
    shapes = [(a["out_channels"], a["in_channels"] // a["groups"], kh, kw)]
    return shapes + ([(a["out_channels"],)] if a.get("bias") else [])


def _linear_params(op):
    a = op.attrs
    shapes = [(a["out_features"], a["in_features"])]
    return shapes + ([(a["out_features"],)] if a.get("bias") else [])


def _reads_input_and_weights(op) -> int:
    """The input and the weights; a later call of shared weights (graph.meta["shared_params"])
    holds fewer parameters than it reads (none, or a tied decoder's bias): counted from its
    attributes."""
    shapes = (_conv_params if op.kind == "conv2d" else _linear_params)(op)
    width = int(op.attrs.get("param_dtype_bytes", op.out.dtype_bytes))
    weights = max(op.param_bytes, sum(math.prod(s) for s in shapes) * width)
    return sum(s.nbytes for s in op.in_specs) + weights


# -- PyTorch ------------------------------------------------------------------------------
def _conv_kernel(op, state):
    """conv2d, or convolution_backward with the output mask of one gradient (input | weight
    and bias), as autograd calls it. A channels-last convolution (attrs["memory_format"])
    is fed its input and output gradient channels-last (_channels_last_conv_kernel)."""
    a, owner = op.attrs, op.forward or op.name
    w, *b = state.params_of(op)
    conv_args = (a["stride"], a["padding"], a["dilation"])
    if is_channels_last(op):
        return _channels_last_conv_kernel(op, state, w, b)
    if op.kind == "conv2d":
        bias = b[0] if b else None
        return lambda x: F.conv2d(x, w, bias, *conv_args, a["groups"])
    bias_sizes = list(b[0].shape) if b else None
    bwd = (*conv_args, False, [0, 0], a["groups"])
    if op.kind == "conv2d_grad_input":
        x_shape = state.placeholder(a["in_shape"])        # read for its shape only
        return lambda dy: aten.convolution_backward(dy, x_shape, w, None, *bwd,
                                                    [True, False, False])[0]

    def conv_grad_weight(dy, x):
        _, gw, gb = aten.convolution_backward(dy, x, w, bias_sizes, *bwd,
                                              [False, True, bool(b)])
        state.grads[owner] = [gw, gb] if b else [gw]
        return gw
    return conv_grad_weight


def _channels_last_conv_kernel(op, state, w, b):
    """A convolution PyTorch runs on channels-last maps: the input, the output's gradient and
    the input read for its shape (whose strides pick the gradient's kernel) made
    channels-last, as autograd passes them in such a network (a no-op where the replay
    already made them so; where it made them NCHW, a copy)."""
    a, owner = op.attrs, op.forward or op.name
    last = torch.channels_last
    conv_args = (a["stride"], a["padding"], a["dilation"])
    if op.kind == "conv2d":
        bias = b[0] if b else None
        return lambda x: F.conv2d(x.contiguous(memory_format=last), w, bias, *conv_args,
                                  a["groups"])
    bias_sizes = list(b[0].shape) if b else None
    bwd = (*conv_args, False, [0, 0], a["groups"])
    if op.kind == "conv2d_grad_input":
        x_shape = state.placeholder(a["in_shape"]).contiguous(memory_format=last)
        return lambda dy: aten.convolution_backward(
            dy.contiguous(memory_format=last), x_shape, w, None, *bwd, [True, False, False])[0]

    def conv_grad_weight(dy, x):
        _, gw, gb = aten.convolution_backward(
            dy.contiguous(memory_format=last), x.contiguous(memory_format=last), w,
            bias_sizes, *bwd, [False, True, bool(b)])
        state.grads[owner] = [gw, gb] if b else [gw]
        return gw
    return conv_grad_weight


def _conv_module(op, m, i):
    a = op.attrs
    return lambda ins: F.conv2d(ins[0], m._p(i, 0), m._p(i, 1), a["stride"], a["padding"],
                                a["dilation"], a["groups"])


def _linear_kernel(op, state):
    """F.linear; dy @ W; dy^T @ x (+ the bias gradient dy.sum(0))."""
    a, owner = op.attrs, op.forward or op.name
    w, *b = state.params_of(op)
    if op.kind == "linear":
        bias = b[0] if b else None
        return lambda x: F.linear(x, w, bias)
    if op.kind == "linear_grad_input":
        return lambda dy: dy.reshape(-1, a["out_features"]).mm(w)

    def linear_grad_weight(dy, x):
        dy2 = dy.reshape(-1, a["out_features"])
        gw = dy2.t().mm(x.reshape(-1, a["in_features"]))
        state.grads[owner] = [gw, dy2.sum(0)] if b else [gw]
        return gw
    return linear_grad_weight


def _linear_module(op, m, i):
    return lambda ins: F.linear(ins[0], m._p(i, 0), m._p(i, 1))


# -- batched matrix products (torch.matmul of two tensors of rank >= 2) -------------------
def batched_matmul_macs(op) -> float:
    """out (..., m, n) = a (..., m, k) @ b (..., k, n): m n k per matrix of the broadcast
    batch. A gradient (dy @ b^T or a^T @ dy) does as many: dy's values times k (the last
    dimension of a, the first matrix dimension of b)."""
    if op.kind == "batched_matmul":
        return float(op.out.numel * op.in_specs[0].shape[-1])
    k = op.out.shape[-1] if op.attrs["factor"] == 0 else op.out.shape[-2]
    return float(op.in_specs[0].numel * k)


def _batched_matmul_dims(op) -> tuple[int, int, int, int]:
    """(m, n, k, batch) of the strided-batched GEMM a batched product (or its gradient) runs:
    its output's last two dimensions by the reduction, once per matrix of the batch."""
    m, n = op.out.shape[-2], op.out.shape[-1]
    source = op.out if op.kind == "batched_matmul" else op.in_specs[0]   # dy for a gradient
    batch = math.prod(source.shape[:-2])
    k = max(1, round(op.macs / max(1, batch * m * n)))
    return m, n, k, batch


def _batched_matmul_grad_flops(op) -> float:
    """The product, then the sum over the batch dimensions where the factor broadcast."""
    dy = op.in_specs[0].shape
    expanded = math.prod(dy[:-2]) * op.out.shape[-2] * op.out.shape[-1]
    return 2.0 * op.macs + float(expanded - op.out.numel)


def _batched_matmul_grad_kernel(op, state):
    """What autograd runs for torch.matmul's gradient: dy @ b^T (factor 0) or a^T @ dy
    (factor 1), summed to the factor's shape where it broadcast."""
    shape = op.out.shape
    if op.attrs["factor"] == 0:
        return lambda dy, b: torch.matmul(dy, b.transpose(-1, -2)).sum_to_size(shape)
    return lambda dy, a: torch.matmul(a.transpose(-1, -2), dy).sum_to_size(shape)


register(
    OpKind("conv2d", "conv", flops=_flops_with_bias, macs=conv_macs,
           gemm_shape=_conv_gemm("forward"), gemm_role=_conv_role("forward"),
           bytes_read=_reads_input_and_weights,
           saves=("in",),
           backward=backward_rules.input_and_weight, param_shapes=_conv_params,
           torch_kernel=_conv_kernel, torch_module=_conv_module,
           doc="2-D convolution (attrs: kernel, stride, padding, dilation, groups, bias)"),
    OpKind("linear", "matmul", flops=_flops_with_bias, macs=linear_macs,
           gemm_shape=linear_gemm_shape("forward"), gemm_role=_linear_role("forward"),
           bytes_read=_reads_input_and_weights,
           saves=("in",),
           backward=backward_rules.input_and_weight, param_shapes=_linear_params,
           torch_kernel=_linear_kernel, torch_module=_linear_module,
           doc="x @ W^T (+ b) over the last dimension; batch_rows rows"),
    OpKind("conv2d_grad_input", "conv_grad_input", "backward", flops=gemm_flops,
           macs=conv_macs, gemm_shape=_conv_gemm("grad_input"), reads_params=True,
           gemm_role=_conv_role("grad_input"),
           torch_kernel=_conv_kernel),
    OpKind("conv2d_grad_weight", "conv_grad_weight", "backward", flops=gemm_flops,
           macs=conv_macs, gemm_shape=_conv_gemm("grad_weight"), carries_params=True,
           gemm_role=_conv_role("grad_weight"),
           torch_kernel=_conv_kernel),
    OpKind("linear_grad_input", "matmul_grad", "backward", flops=gemm_flops,
           macs=linear_macs, gemm_shape=linear_gemm_shape("grad_input"), reads_params=True,
           gemm_role=_linear_role("grad_input"),
           torch_kernel=_linear_kernel),
    OpKind("linear_grad_weight", "matmul_grad", "backward", flops=gemm_flops,
           macs=linear_macs, gemm_shape=linear_gemm_shape("grad_weight"), carries_params=True,
           gemm_role=_linear_role("grad_weight"),
           torch_kernel=_linear_kernel),
    # not in MATMUL_KINDS: profiles key it on its layout
    OpKind("batched_matmul", "matmul", flops=lambda op: 2.0 * op.macs,
           macs=batched_matmul_macs, gemm_role=GemmRole("batched", dims=_batched_matmul_dims),
           backward=backward_rules.per_factor,
           torch_kernel=lambda op, state: torch.matmul,
           doc="torch.matmul of (..., m, k) and (..., k, n), batch dimensions broadcast"),
    OpKind("batched_matmul_grad", "matmul_grad", "backward",
           flops=_batched_matmul_grad_flops, macs=batched_matmul_macs,
           gemm_role=GemmRole("batched", "grad_input", _batched_matmul_dims),
           torch_kernel=_batched_matmul_grad_kernel,
           doc="dy @ b^T or a^T @ dy for one factor, summed where it broadcast"),
)
