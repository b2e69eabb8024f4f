"""Attention: softmax over one dimension, the causal mask, and fused scaled dot-product
attention (F.scaled_dot_product_attention) as one op.

FLOPs per element are nominal: softmax is a max, a subtraction, an exp, a sum and a division;
its gradient a product with the output, a sum, a subtraction and a product. Fused attention
counts the products QK^T and AV and the softmax between them, over the full score matrix (a
causal kernel may skip the masked half; attrs["causal"] says which it is, for the device
models); its backward counts the four products of the gradients (dV, dP, dQ, dK) and the
softmax's gradient.
"""
from __future__ import annotations

import math

from ..errors import WorkloadError
from . import backward_rules
from ._registry import GemmRole, OpKind, per_element, register
from ._torch import F, aten, torch

SOFTMAX_FLOPS = 5.0
SOFTMAX_GRAD_FLOPS = 4.0


def _softmax_kernel(op, state):
    dim = op.attrs["dim"]
    if op.kind == "softmax":
        return lambda x: torch.softmax(x, dim)
    return lambda dy, y: aten._softmax_backward_data(dy, y, dim, y.dtype)


def causal_mask(rows: int, cols: int, device=None):
    """True where a query may not see a key: above the diagonal (row i sees keys 0..i), as
    F.scaled_dot_product_attention(is_causal=True) aligns it."""
    return torch.ones(rows, cols, dtype=torch.bool, device=device).triu(1)


def _mask_bytes(op) -> int:
    """The (rows, cols) boolean mask the fill reads besides its input."""
    return op.out.shape[-2] * op.out.shape[-1]


def _masked_fill_kernel(op, state):
    """x.masked_fill(mask, value); the gradient is dy with zeros where the mask is set."""
    rows, cols = op.out.shape[-2:]
    mask = causal_mask(rows, cols, state.dev if state is not None else None)
    if op.kind == "masked_fill":
        value = op.attrs["value"]
        return lambda x: x.masked_fill(mask.to(x.device), value)
    return lambda dy: dy.masked_fill(mask.to(dy.device), 0.0)


def _scores(op) -> int:
    """Values of the score matrix: batch x query rows x key rows."""
    q, k = op.in_specs[0].shape, op.in_specs[1].shape
    return math.prod(q[:-1]) * k[-2]


def _attention_flops(op) -> float:
    d, dv = op.in_specs[0].shape[-1], op.in_specs[2].shape[-1]
    return (2.0 * _scores(op) * (d + dv)) + SOFTMAX_FLOPS * _scores(op)


def _attention_grad_flops(op) -> float:
    d, dv = op.in_specs[1].shape[-1], op.in_specs[3].shape[-1]   # reads dy, q, k, v, out
    scores = math.prod(op.in_specs[1].shape[:-1]) * op.in_specs[2].shape[-2]
    return 4.0 * scores * (d + dv) + SOFTMAX_GRAD_FLOPS * scores


def _attention_kernel(op, state):
    """The fused kernel PyTorch runs on a CPU (flash attention for CPU), which saves its
    output and log-sum-exp for the backward kernel. The gradient op returns dQ (its output
    holds dQ, dK and dV; replay times the kernel, which makes all three)."""
    owner, causal = op.forward or op.name, bool(op.attrs.get("causal"))
    if state.dev.type != "cpu":
        raise WorkloadError(f"op {op.name!r}: replaying fused attention runs on a CPU only "
                            f"(its CUDA kernels are PyTorch's choice per device)")
    if op.kind == "attention":
        def attention(q, k, v):
            out, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal)
            state.saved[owner] = (lse,)
            return out
        return attention

    def attention_grad(dy, q, k, v, out):
        if owner not in state.saved:   # run alone: the forward's log-sum-exp, made once
            state.saved[owner] = (aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, causal)[1],)
        lse = state.saved[owner][0]
        return aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dy, q, k, v, out, lse, 0.0, causal)[0]
    return attention_grad


def _attention_module(op, m, i):
    causal = bool(op.attrs.get("causal"))
    return lambda ins: F.scaled_dot_product_attention(*ins, is_causal=causal)


register(
    OpKind("softmax", "normalization", flops=per_element(SOFTMAX_FLOPS), saves=("out",),
           torch_kernel=_softmax_kernel, doc="softmax over attrs['dim']"),
    OpKind("softmax_grad", "normalization", "backward", flops=per_element(SOFTMAX_GRAD_FLOPS),
           torch_kernel=_softmax_kernel,
           doc="the softmax's gradient from dy and the saved output"),
    OpKind("masked_fill", "elementwise", flops=per_element(1.0),
           bytes_read=lambda op: op.in_specs[0].nbytes + _mask_bytes(op),
           torch_kernel=_masked_fill_kernel,
           doc="the causal mask: value (-inf) above the diagonal of the last two dims"),
    OpKind("masked_fill_grad", "elementwise", "backward", flops=per_element(1.0),
           bytes_read=lambda op: op.in_specs[0].nbytes + _mask_bytes(op),
           torch_kernel=_masked_fill_kernel, doc="dy with zeros under the mask"),
    # CPUs cost it by the matmul family's roofline, GPUs as SDPA's kernels (its GEMM role)
    OpKind("attention", "matmul", flops=_attention_flops, gemm_role=GemmRole("sdpa"),
           saves=("in", "in1", "in2", "out"), backward=backward_rules.fused_gradient,
           torch_kernel=_attention_kernel, torch_module=_attention_module,
           doc="F.scaled_dot_product_attention(q, k, v, is_causal=attrs['causal'])"),
    OpKind("attention_grad", "matmul_grad", "backward", flops=_attention_grad_flops,
           gemm_role=GemmRole("sdpa", "grad_input"),
           torch_kernel=_attention_kernel,
           doc="one fused op making dQ, dK and dV (its output holds all three) from dy, q, "
               "k, v and the output"),
)
