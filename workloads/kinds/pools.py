"""Pooling: window reductions over (N, C, H, W) and their scatter-like gradients.

A forward pool is keyed on its output's layout: a window kernel's cost goes with what it
writes (a 2x2 pool costs 3x a global pool per input value on a 2-vCPU EPYC)."""
from __future__ import annotations

from . import OpKind, per_element, register, shape_layout
from ._torch import F, aten


def _window_flops(op) -> float:
    kh, kw = op.attrs["kernel"]
    return float(op.out.numel * kh * kw)


def _output_layout(op) -> tuple[int, int]:
    return shape_layout(op.out.shape)


def _maxpool_args(a):
    return (list(a["kernel"]), list(a["stride"]), list(a["padding"]), [1, 1],
            bool(a.get("ceil_mode", False)))


def _maxpool_kernel(op, state):
    """max_pool2d_with_indices (the indices saved) / its backward."""
    owner, pool = op.forward or op.name, _maxpool_args(op.attrs)
    if op.kind == "maxpool":
        def maxpool(x):
            y, idx = aten.max_pool2d_with_indices(x, *pool)
            state.saved[owner] = (idx,)
            return y
        return maxpool

    def maxpool_grad(dy, x):
        if owner not in state.saved:   # run alone: the forward's indices, made untimed once
            state.saved[owner] = (aten.max_pool2d_with_indices(x, *pool)[1],)
        return aten.max_pool2d_with_indices_backward(dy, x, *pool, state.saved[owner][0])
    return maxpool_grad


def _maxpool_module(op, m, i):
    a = op.attrs
    return lambda ins: F.max_pool2d(ins[0], a["kernel"], a["stride"], a["padding"],
                                    ceil_mode=bool(a.get("ceil_mode", False)))


def _avgpool_kernel(op, state):
    a = op.attrs
    pool = (list(a["kernel"]), list(a["stride"]), list(a["padding"]))
    if op.kind == "avgpool":
        return lambda x: F.avg_pool2d(x, *pool)
    x_shape = state.placeholder(op.out.shape)
    return lambda dy: aten.avg_pool2d_backward(dy, x_shape, *pool, False, True, None)


def _avgpool_module(op, m, i):
    a = op.attrs
    return lambda ins: F.avg_pool2d(ins[0], a["kernel"], a["stride"], a["padding"])


def _adaptive_kernel(op, state):
    if op.kind == "adaptive_avgpool":
        return lambda x: F.adaptive_avg_pool2d(x, op.attrs["output_size"])
    x_shape = state.placeholder(op.out.shape)
    return lambda dy: aten._adaptive_avg_pool2d_backward(dy, x_shape)


register(
    OpKind("maxpool", "pooling", flops=_window_flops, layout=_output_layout, saves=("in",),
           torch_kernel=_maxpool_kernel, torch_module=_maxpool_module,
           doc="max over kernel windows (stride, padding, ceil_mode)"),
    OpKind("avgpool", "pooling", flops=_window_flops, layout=_output_layout,
           torch_kernel=_avgpool_kernel, torch_module=_avgpool_module,
           doc="mean over kernel windows (stride, padding)"),
    OpKind("adaptive_avgpool", "pooling", flops=lambda op: float(op.in_specs[0].numel),
           layout=_output_layout, torch_kernel=_adaptive_kernel,
           doc="mean over output_size windows that tile the input"),
    OpKind("maxpool_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=_maxpool_kernel),
    OpKind("avgpool_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=_avgpool_kernel),
    OpKind("adaptive_avgpool_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=_adaptive_kernel),
)
