"""The difference of two tensors, x - y (PoolFormer's `pool(x) - x`; a norm written by hand,
`x - x.mean(1, keepdim=True)`, where y broadcasts over x). Its gradient is dy for x, routed
without an op, and -dy for y, summed where y broadcast: one `sub_grad` kernel, as autograd's
SubBackward negates the gradient of the subtrahend.

The sum of two tensors where y broadcasts over x (a diffusion U-Net's timestep embedding
(N, C, 1, 1) added to its (N, C, H, W) map): `add_broadcast`, whose gradient is dy for x and
dy summed to y's shape for y (one `add_broadcast_grad` reduction, autograd's sum_to_size)."""
from __future__ import annotations

from ._registry import OpKind, per_element, per_input_element, register
from ._torch import torch


def _backward(ctx, op, dy) -> None:
    x, y = op.inputs
    if ctx.needs_grad(x):
        ctx.add_grad(x, dy)
    if ctx.needs_grad(y):
        ctx.add_grad(y, ctx.grad_op(f"{op.name}.grad", f"{op.kind}_grad", op, [dy],
                                    ctx.spec(y), (), dy))


def _grad_kernel(op, state):
    """-dy (of a difference) or dy (of a sum), summed to y's shape where y broadcast over
    x."""
    shape = tuple(op.out.shape)
    sign = torch.neg if op.kind == "sub_grad" else torch.positive
    if tuple(op.in_specs[0].shape) == shape:
        return sign
    return lambda dy: sign(dy).sum_to_size(shape)


register(
    OpKind("sub", "elementwise", flops=per_element(1.0), backward=_backward,
           torch_kernel=lambda op, state: torch.sub,
           doc="x - y; y may broadcast over x (1 where they differ)"),
    # a negation per value of dy (and the sum where y broadcast)
    OpKind("sub_grad", "elementwise", "backward", flops=per_input_element(1.0),
           torch_kernel=_grad_kernel,
           doc="-dy: the gradient of y in x - y"),
    OpKind("add_broadcast", "elementwise", flops=per_element(1.0), backward=_backward,
           torch_kernel=lambda op, state: torch.add,
           doc="x + y, y broadcast over x (1 where they differ)"),
    # the sum of dy over the dimensions where y broadcast
    OpKind("add_broadcast_grad", "elementwise", "backward", flops=per_input_element(1.0),
           torch_kernel=_grad_kernel,
           doc="dy summed to y's shape: the gradient of y in x + y"),
)
