"""The difference of two tensors of one shape, x - y (PoolFormer's `pool(x) - x`). Its
gradient is dy for x, routed without an op, and -dy for y: one `sub_grad` kernel, as autograd's
SubBackward negates the gradient of the subtrahend."""
from __future__ import annotations

from ._registry import OpKind, per_element, register
from ._torch import torch


def _backward(ctx, op, dy) -> None:
    x, y = op.inputs
    if ctx.needs_grad(x):
        ctx.add_grad(x, dy)
    if ctx.needs_grad(y):
        ctx.add_grad(y, ctx.grad_op(f"{op.name}.grad", "sub_grad", op, [dy], ctx.spec(y), (),
                                    dy))


register(
    OpKind("sub", "elementwise", flops=per_element(1.0), backward=_backward,
           torch_kernel=lambda op, state: torch.sub, doc="x - y, same shapes"),
    OpKind("sub_grad", "elementwise", "backward", flops=per_element(1.0),
           torch_kernel=lambda op, state: torch.neg, doc="-dy: the gradient of y in x - y"),
)
