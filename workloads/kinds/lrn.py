"""Cross-channel local response normalisation (Krizhevsky et al. 2012; Caffe's LRN layer,
cuDNN's cudnnLRNCrossChannel*, torch.nn.LocalResponseNorm), on (N, C, H, W):

    y = x / (k + alpha / size * sum of x^2 over `size` neighbouring channels) ** beta

the window running from size // 2 channels before to (size - 1) // 2 after, zeros outside
(PyTorch's and Caffe's convention; alpha is divided by the window's size in all three).

Costs follow cuDNN's kernels, which are memory-bound: the forward reads x and writes y; the
backward (cudnnLRNCrossChannelBackward takes y, dy and x, and no scale tensor: it recomputes
the scale from x) reads dy, x and y and writes dx. FLOPs are nominal (a square, the window's
adds, the scale and its power, a product: size + 4 a value; the gradient about twice that);
the device models cost the kind by its traffic in the normalization family.
"""
from __future__ import annotations

from ._registry import OpKind, register
from ._torch import F

ATTRS = ("size", "alpha", "beta", "k")


def _forward_flops(op) -> float:
    return float((op.attrs["size"] + 4) * op.out.numel)


def _grad_flops(op) -> float:
    return float((2 * op.attrs["size"] + 8) * op.out.numel)


def _channel_window_sum(t, before: int, after: int):
    """Sum over channels c - before .. c + after of an (N, C, H, W) tensor, zeros outside."""
    n, c = t.shape[0], t.shape[1]
    size = before + after + 1
    padded = F.pad(t.reshape(n, 1, c, t.shape[2], -1), (0, 0, 0, 0, before, after))
    return (F.avg_pool3d(padded, (size, 1, 1), stride=1) * size).reshape(t.shape)


def _scale(x, size: int, alpha: float, k: float):
    return k + alpha / size * _channel_window_sum(x * x, size // 2, (size - 1) // 2)


def lrn_backward(dy, x, y, size: int, alpha: float, beta: float, k: float):
    """dx of y = x * scale^-beta: dy * scale^-beta, less 2 alpha beta / size times x times the
    sum of dy * y / scale over the windows that hold each channel (the transposed window)."""
    scale = _scale(x, size, alpha, k)
    spread = _channel_window_sum(dy * y / scale, (size - 1) // 2, size // 2)
    return dy * scale.pow(-beta) - (2.0 * alpha * beta / size) * x * spread


def _kernel(op, state):
    size, alpha, beta, k = (op.attrs[a] for a in ATTRS)
    if op.kind == "lrn":
        return lambda x: F.local_response_norm(x, size, alpha, beta, k)
    return lambda dy, x, y: lrn_backward(dy, x, y, size, alpha, beta, k)


register(
    OpKind("lrn", "normalization", flops=_forward_flops, saves=("in", "out"),
           torch_kernel=_kernel,
           doc="cross-channel local response norm of (N, C, H, W) (size, alpha, beta, k), "
               "as nn.LocalResponseNorm"),
    OpKind("lrn_grad", "normalization", "backward", flops=_grad_flops, torch_kernel=_kernel),
)
