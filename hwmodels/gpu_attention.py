"""Batched matrix products and scaled dot-product attention on a GPU, as PyTorch runs them.

Batched products (torch.matmul of rank >= 3) are one cuBLAS strided-batched GEMM; their
gradients too (dy @ b^T, a^T @ dy), the broadcast sum folded into the reduction.

F.scaled_dot_product_attention picks its CUDA backend by rule, not by timing
(aten/src/ATen/native/transformers/cuda/sdp_utils.cpp), in this order:
- `flash` (FlashAttention-2): Ampere or newer, FP16/BF16 inputs, head dimension at most 256;
- `efficient` (the memory-efficient kernel from xFormers/CUTLASS): Maxwell or newer, any float;
- `math`: the composite of its parts, which any device runs.

The fused backends never write the score matrix: they stream Q, K and V through on-chip tiles
(the backward recomputes the scores, five products instead of four), run the exponentials on
the CUDA cores beside the products, and skip the key blocks a causal mask hides. The math
backend runs each part as its own kernel and writes the score matrix out, then reads it back,
several times. Neither has a constant of its own: the products run at the architecture's GEMM
efficiency (gpu_families.toml, fitted to DeepBench GEMMs and CNN training, not to attention),
which is why attention times here are a model of the algorithm, not a fit.
"""
from __future__ import annotations

import math
from typing import Callable

from workloads.graph import Op

from .gpu_gemm import GemmCost

# Architectures whose SDPA has each fused backend (PyTorch's sm80+ and sm50+ rules).
FLASH_ARCHITECTURES = frozenset({"ampere", "ada", "hopper", "blackwell"})
NO_EFFICIENT_ARCHITECTURES = frozenset({"kepler"})
FLASH_MAX_HEAD_DIM = 256
FUSED_KEY_BLOCK = 128          # key rows per tile of the fused kernels (causal skipping)
SOFTMAX_FLOPS = 5.0            # per score: max, subtract, exp, sum, divide
SOFTMAX_GRAD_FLOPS = 4.0

UnitGemm = Callable[..., GemmCost]


def sdpa_backend(architecture: str | None, arithmetic: str, head_dim: int) -> str:
    """The backend PyTorch's SDPA dispatches to on this architecture and arithmetic."""
    if (architecture in FLASH_ARCHITECTURES and arithmetic in ("fp16", "bf16")
            and head_dim <= FLASH_MAX_HEAD_DIM):
        return "flash"
    if architecture not in NO_EFFICIENT_ARCHITECTURES:
        return "efficient"
    return "math"


class AttentionShape:
    """Batch x heads, query rows, key rows and head dimensions of an attention op or its
    gradient (whose inputs are dy, q, k, v, out)."""

    def __init__(self, op: Op) -> None:
        q, k, v = op.in_specs[:3] if op.kind == "attention" else op.in_specs[1:4]
        self.batch = math.prod(q.shape[:-2])
        self.rows, self.head_dim = q.shape[-2], q.shape[-1]
        self.keys, self.value_dim = k.shape[-2], v.shape[-1]
        self.elem_bytes = q.dtype_bytes
        self.causal = bool(op.attrs.get("causal"))

    @property
    def scores(self) -> int:
        return self.batch * self.rows * self.keys

    def visible_share(self) -> float:
        """Share of the key blocks a fused kernel visits: all, or the diagonal and below."""
        if not self.causal:
            return 1.0
        blocks = math.ceil(self.keys / FUSED_KEY_BLOCK)
        return (blocks + 1) / (2 * blocks)


def attention_cost(op: Op, backend: str, unit_gemm: UnitGemm, fp32_peak_flops: float
                   ) -> tuple[float, float, int]:
    """(arithmetic seconds at efficiency 1, DRAM bytes beyond the op's own tensors, kernels)
    of an attention op or its gradient on `backend`."""
    s = AttentionShape(op)
    b, lq, lk, d, dv = s.batch, s.rows, s.keys, s.head_dim, s.value_dim
    forward = op.kind == "attention"
    # (m, n, k) of each product: scores, then the values (forward); for the backward the
    # gradients dV, dP, dQ, dK, plus the scores again in a fused kernel
    products = ([(lq, lk, d), (lq, dv, lk)] if forward else
                [(lk, dv, lq), (lq, lk, dv), (lq, d, lk), (lk, d, lq)])
    softmax_flops = (SOFTMAX_FLOPS if forward else SOFTMAX_GRAD_FLOPS) * s.scores
    extra_bytes = 0.0 if forward else 2.0 * b * lk * (d + dv) * s.elem_bytes   # dK, dV out
    if backend == "math":
        gemm_s = sum(unit_gemm(m, n, k, b).compute_s for m, n, k in products)
        # the score matrix: written by QK^T, masked, softmaxed, read by the next product
        # (forward); dP written, read with P by the softmax gradient, dS written and read by
        # two products (backward)
        passes = (6 if s.causal else 4) if forward else 7
        kernels = (len(products) + (3 if s.causal else 2)) if forward else len(products) + 3
        return (gemm_s + softmax_flops / fp32_peak_flops,
                extra_bytes + passes * s.scores * s.elem_bytes, kernels)
    if not forward:
        products = [(lq, lk, d), *products]          # the scores, recomputed
    share = s.visible_share()
    gemm_s = sum(unit_gemm(m, n, k, b).compute_s for m, n, k in products) * share
    log_sum_exp_bytes = 4.0 * b * lq * (1 if forward else 2)   # saved, then read back
    return (gemm_s + share * softmax_flops / fp32_peak_flops,
            extra_bytes + log_sum_exp_bytes, 1 if forward else 2)
