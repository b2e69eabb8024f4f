"""The difference of two tensors, x - y (PoolFormer's `pool(x) - x`; a norm written by hand,
`x - x.mean(1, keepdim=True)`, where y broadcasts over x). Its gradient is dy for x, routed
without an op, and -dy for y, summed where y broadcast: one `sub_grad` kernel, as autograd's
SubBackward negates the gradient of the subtrahend."""
from __future__ import annotations

from ._registry import OpKind, per_element, per_input_element, register
from ._torch import torch


def _backward(ctx, op, dy) -> None:
    x, y = op.inputs
    if ctx.needs_grad(x):
        ctx.add_grad(x, dy)
    if ctx.needs_grad(y):
        ctx.add_grad(y, ctx.grad_op(f"{op.name}.grad", "sub_grad", op, [dy], ctx.spec(y), (),
                                    dy))


def _grad_kernel(op, state):
    """-dy, summed to y's shape where y broadcast over x."""
    shape = tuple(op.out.shape)
    if tuple(op.in_specs[0].shape) == shape:
        return torch.neg
    return lambda dy: torch.neg(dy).sum_to_size(shape)


register(
    OpKind("sub", "elementwise", flops=per_element(1.0), backward=_backward,
           torch_kernel=lambda op, state: torch.sub,
           doc="x - y; y may broadcast over x (1 where they differ)"),
    # a negation per value of dy (and the sum where y broadcast)
    OpKind("sub_grad", "elementwise", "backward", flops=per_input_element(1.0),
           torch_kernel=_grad_kernel,
           doc="-dy: the gradient of y in x - y"),
)
