"""The product of an activation with a constant matrix: x (..., k) @ C (k, n), C a buffer or a
tensor of constants (a zero-shot classifier's fixed text features, `image @ self.text.t()`).
It runs as one GEMM as a linear layer does, with no parameters: its gradient goes into x
alone (dy @ C^T), and C gets none. Under autocast the FP32 buffer is cast to half at each
call, as a linear layer's weight is.

attrs: batch_rows (the rows of x), in_features (k), out_features (n), as a linear layer's.
"""
from __future__ import annotations

from ._registry import GemmRole, OpKind, register
from ._torch import torch
from .matmul import gemm_flops, linear_dims, linear_gemm_shape, linear_macs


def _constant(op, dev=None):
    """A constant (k, n) matrix (its values do not change the time)."""
    a = op.attrs
    gen = torch.Generator().manual_seed(0)
    return torch.randn((a["in_features"], a["out_features"]), generator=gen).to(dev)


def _constant_elements(op) -> int:
    return op.attrs["in_features"] * op.attrs["out_features"]


def _constant_bytes(op) -> int:
    return _constant_elements(op) * op.out.dtype_bytes


def _kernel(op, state):
    """x @ C; dy @ C^T for the gradient."""
    constant = _constant(op, state.dev if state is not None else None)
    if op.kind == "constant_matmul_grad":
        return lambda dy: torch.matmul(dy, constant.to(dy.dtype).t())
    return lambda x: torch.matmul(x, constant.to(x.dtype))


register(
    OpKind("constant_matmul", "matmul", flops=gemm_flops, macs=linear_macs,
           gemm_shape=linear_gemm_shape("forward"),
           gemm_role=GemmRole("blas", "forward", linear_dims("forward"),
                              fp32_buffer=_constant_elements),
           bytes_read=lambda op: op.in_specs[0].nbytes + _constant_bytes(op),
           torch_kernel=_kernel,
           torch_buffers=lambda op, dev: [("constant", _constant(op, dev))],
           torch_module=lambda op, m, i: lambda ins: torch.matmul(
               ins[0], getattr(m, f"constant{i}").to(ins[0].dtype)),
           doc="x @ C over the last dimension, C a constant (k, n) matrix (a buffer: no "
               "parameters, no gradient into it); batch_rows rows"),
    OpKind("constant_matmul_grad", "matmul_grad", "backward", flops=gemm_flops,
           macs=linear_macs, gemm_shape=linear_gemm_shape("grad_input"),
           gemm_role=GemmRole("blas", "grad_input", linear_dims("grad_input")),
           bytes_read=lambda op: op.in_specs[0].nbytes + _constant_bytes(op),
           torch_kernel=_kernel, doc="dy @ C^T: the gradient of x; C gets none"),
)
