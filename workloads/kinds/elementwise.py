"""Streaming elementwise kinds: ReLU, sums, products, arithmetic with a constant, dropout and
the sum of a tensor's gradient contributions."""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, per_element, register
from ._torch import F, aten, torch


def sum_all(*xs):
    """x0 + x1 (+ ...), as autograd sums gradient contributions."""
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out = out + x
    return out


def scalar_fn(attrs: dict):
    """The one kernel of a `scalar` op: x + shift, x * scale or shift - x."""
    scale, shift = attrs["scale"], attrs["shift"]
    if scale == 1.0:
        return lambda x: x + shift
    if shift == 0.0:
        return lambda x: x * scale
    return lambda x: shift - x


def _scalar_backward(ctx, op, dy) -> None:
    """x + c passes dy on unchanged; a scaling makes a scalar_grad (dy times the constant)."""
    if op.attrs["scale"] == 1.0:
        backward_rules.route(ctx, op, dy)
    else:
        backward_rules.gradient(ctx, op, dy)


def _mul_grad_flops(op) -> float:
    """dy times the other factor, summed where the factor broadcast."""
    dy = op.in_specs[0].numel
    return float(dy if op.out.numel == dy else 2 * dy)


def _dropout_is_view(op) -> bool:
    """Identity at inference (and with p = 0), as in PyTorch; in a training graph it draws a
    random mask, scales it and multiplies: 12 ns per element on one EPYC core."""
    return not (op.attrs.get("training") and op.attrs.get("p", 0) > 0)


def _dropout_kernel(op, state):
    """What F.dropout runs in training: on CPU a Bernoulli mask, scaled, then a product (the
    mask is saved, and the gradient is the product with it); on CUDA one fused kernel."""
    owner = op.forward or op.name
    keep = 1.0 - op.attrs["p"]
    fused = state.dev.type == "cuda"
    if op.kind == "dropout":
        def dropout(x):
            if fused:
                y, mask = aten.native_dropout(x, 1.0 - keep, True)
            else:
                mask = torch.empty_like(x).bernoulli_(keep).div_(keep)
                y = x * mask
            state.saved[owner] = (mask,)
            return y
        return dropout

    def dropout_grad(dy):
        if owner not in state.saved:   # run alone: a mask, made untimed once
            dropout_mask = torch.empty_like(dy).bernoulli_(keep)
            state.saved[owner] = ((dropout_mask > 0) if fused else dropout_mask.div_(keep),)
        mask = state.saved[owner][0]
        return aten.native_dropout_backward(dy, mask, 1.0 / keep) if fused else dy * mask
    return dropout_grad


register(
    OpKind("relu", "elementwise", flops=per_element(1.0), saves=("out",),
           torch_kernel=lambda op, state: F.relu, doc="max(x, 0)"),
    OpKind("relu_grad", "elementwise", "backward", flops=per_element(1.0),
           torch_kernel=lambda op, state: lambda dy, y: aten.threshold_backward(dy, y, 0)),
    OpKind("add", "elementwise", flops=per_element(1.0), backward=backward_rules.route,
           torch_kernel=lambda op, state: sum_all, doc="a + b, same shapes"),
    OpKind("mul", "elementwise", flops=per_element(1.0), backward=backward_rules.per_factor,
           torch_kernel=lambda op, state: torch.mul,
           doc="a * b; the second factor may broadcast (1 where they differ)"),
    OpKind("mul_grad", "elementwise", "backward", flops=_mul_grad_flops,
           torch_kernel=lambda op, state: lambda dy, other: (dy * other).sum_to_size(
               op.out.shape)),
    OpKind("scalar", "elementwise", flops=per_element(1.0), backward=_scalar_backward,
           torch_kernel=lambda op, state: scalar_fn(op.attrs),
           doc="x + shift, x * scale or shift - x (one kernel)"),
    OpKind("scalar_grad", "elementwise", "backward", flops=per_element(1.0),
           torch_kernel=lambda op, state: lambda dy: dy * op.attrs["scale"]),
    OpKind("dropout", "elementwise", flops=per_element(3.0),   # draw, scale, multiply
           view=_dropout_is_view, aliases_input=True,
           bytes_written=lambda op: 2 * op.out.nbytes,          # the output and its mask
           training_attrs={"training": True}, saves_mask=True, torch_kernel=_dropout_kernel,
           torch_module=lambda op, m, i: lambda ins: F.dropout(ins[0], op.attrs["p"],
                                                               m.training),
           doc="F.dropout(p); a view outside a training graph"),
    OpKind("dropout_grad", "elementwise", "backward", flops=per_element(1.0),  # times the mask
           bytes_read=lambda op: 2 * op.out.nbytes,            # the gradient and the mask
           torch_kernel=_dropout_kernel),
    OpKind("grad_accumulate", "elementwise", "backward",
           flops=lambda op: float(op.out.numel * (len(op.inputs) - 1)),
           torch_kernel=lambda op, state: sum_all,
           doc="the sum of a tensor's gradient contributions (several consumers)"),
)
