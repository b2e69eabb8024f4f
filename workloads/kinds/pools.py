"""Pooling: window reductions over (N, C, H, W) and their scatter-like gradients.

A forward pool is keyed on its output's layout: a window kernel's cost goes with what it
writes (a 2x2 pool costs 3x a global pool per input value on a 2-vCPU EPYC)."""
from __future__ import annotations

from ._registry import OpKind, per_element, register, shape_layout
from ._torch import F, aten


def _window_flops(op) -> float:
    kh, kw = op.attrs["kernel"]
    return float(op.out.numel * kh * kw)


def _output_layout(op) -> tuple[int, int]:
    return shape_layout(op.out.shape)


def maxpool_args(a, dims: int = 2):
    """(kernel, stride, padding, dilation, ceil_mode) of a max pool over `dims` dimensions."""
    return (list(a["kernel"]), list(a["stride"]), list(a["padding"]),
            list(a.get("dilation", (1,) * dims)), bool(a.get("ceil_mode", False)))


def maxpool_kernel(dims: int):
    """The kernel of a max pool over `dims` dimensions: max_pool{dims}d_with_indices (the
    indices saved) / its backward."""
    def kernel(op, state):
        owner, pool = op.forward or op.name, maxpool_args(op.attrs, dims)
        with_indices = getattr(aten, f"max_pool{dims}d_with_indices")
        if op.phase == "forward":
            def maxpool(x):
                y, idx = with_indices(x, *pool)
                state.saved[owner] = (idx,)
                return y
            return maxpool
        backward = getattr(aten, f"max_pool{dims}d_with_indices_backward")

        def maxpool_grad(dy, x, *_y):   # a cuDNN graph's y too, which ATen does not read
            if owner not in state.saved:   # run alone: the forward's indices, made untimed
                state.saved[owner] = (with_indices(x, *pool)[1],)
            return backward(dy, x, *pool, state.saved[owner][0])
        return maxpool_grad
    return kernel


def _maxpool_module(op, m, i):
    a = op.attrs
    return lambda ins: F.max_pool2d(ins[0], a["kernel"], a["stride"], a["padding"],
                                    dilation=a.get("dilation", 1),
                                    ceil_mode=bool(a.get("ceil_mode", False)))


def avgpool_args(a):
    """(kernel, stride, padding, ceil_mode, count_include_pad) of an average pool."""
    return (list(a["kernel"]), list(a["stride"]), list(a["padding"]),
            bool(a.get("ceil_mode", False)), bool(a.get("count_include_pad", True)))


def avgpool_kernel(dims: int):
    """The kernel of an average pool over `dims` dimensions, or its backward."""
    def kernel(op, state):
        pool = avgpool_args(op.attrs)
        if op.phase == "forward":
            return lambda x: getattr(F, f"avg_pool{dims}d")(x, *pool)
        x_shape = state.placeholder(op.out.shape)
        backward = getattr(aten, f"avg_pool{dims}d_backward")
        return lambda dy: backward(dy, x_shape, *pool, None)
    return kernel


def _avgpool_module(op, m, i):
    pool = avgpool_args(op.attrs)
    return lambda ins: F.avg_pool2d(ins[0], *pool)


def _adaptive_flops(op) -> float:
    """An add per value of each output cell's window (windows overlap where the output does
    not divide the input, and repeat values where it is larger)."""
    n, c, h, w = op.in_specs[0].shape
    oh, ow = op.attrs["output_size"]
    return float(n * c * _window_sum(h, oh) * _window_sum(w, ow))


def _window_sum(size: int, out: int) -> int:
    """Input values read along one dimension: rows floor(i*size/out) to ceil((i+1)*size/out)."""
    return sum(-(-(i + 1) * size // out) - i * size // out for i in range(out))


def _adaptive_kernel(op, state):
    if op.kind == "adaptive_avgpool":
        return lambda x: F.adaptive_avg_pool2d(x, op.attrs["output_size"])
    x_shape = state.placeholder(op.out.shape)
    return lambda dy: aten._adaptive_avg_pool2d_backward(dy, x_shape)


register(
    OpKind("maxpool", "pooling", flops=_window_flops, layout=_output_layout, saves=("in",),
           torch_kernel=maxpool_kernel(2), torch_module=_maxpool_module,
           doc="max over kernel windows (stride, padding, dilation, ceil_mode)"),
    OpKind("avgpool", "pooling", flops=_window_flops, layout=_output_layout,
           torch_kernel=avgpool_kernel(2), torch_module=_avgpool_module,
           doc="mean over kernel windows (stride, padding, ceil_mode, count_include_pad)"),
    OpKind("adaptive_avgpool", "pooling", flops=_adaptive_flops,
           layout=_output_layout, torch_kernel=_adaptive_kernel,
           doc="mean over output_size windows that tile the input"),
    OpKind("maxpool_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=maxpool_kernel(2)),
    OpKind("avgpool_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=avgpool_kernel(2)),
    OpKind("adaptive_avgpool_grad", "pooling", "backward", flops=per_element(1.0),
           torch_kernel=_adaptive_kernel),
)
