"""Dropout whose random mask is smaller than its input and broadcasts over it: one draw per
channel (nn.Dropout1d/2d/3d) or per sample (torchvision's stochastic depth, mode "row"; one
for the whole batch in mode "batch"). attrs: p, and mask_shape (the input's shape with 1
where the mask broadcasts)."""
from __future__ import annotations

import math

from ._registry import OpKind, register
from ._torch import torch


def _mask_numel(op) -> int:
    return math.prod(op.attrs["mask_shape"])


def _mask_bytes(op) -> int:
    return _mask_numel(op) * op.out.dtype_bytes


def _is_view(op) -> bool:
    """Identity at inference (and with p = 0), as in PyTorch."""
    return not (op.attrs.get("training") and op.attrs.get("p", 0) > 0)


def _kernel(op, state):
    """What F.dropout2d and torchvision.ops.stochastic_depth run in training: a Bernoulli mask
    of mask_shape scaled by 1/keep, then the broadcast product (the gradient is dy times the
    same mask)."""
    owner, keep = op.forward or op.name, 1.0 - op.attrs["p"]
    mask_shape = tuple(op.attrs["mask_shape"])

    def mask(like):
        return torch.empty(mask_shape, dtype=like.dtype, device=like.device
                           ).bernoulli_(keep).div_(keep)
    if op.kind == "dropout_broadcast":
        def dropout(x):
            state.saved[owner] = (mask(x),)
            return x * state.saved[owner][0]
        return dropout

    def dropout_grad(dy):
        if owner not in state.saved:   # run alone: a mask, made untimed once
            state.saved[owner] = (mask(dy),)
        return dy * state.saved[owner][0]
    return dropout_grad


def _module(op, m, i):
    def run(ins):
        x = ins[0]
        if not m.training or op.attrs["p"] == 0:
            return x
        keep = 1.0 - op.attrs["p"]
        return x * torch.empty(tuple(op.attrs["mask_shape"]), dtype=x.dtype,
                               device=x.device).bernoulli_(keep).div_(keep)
    return run


register(
    OpKind("dropout_broadcast", "elementwise",
           # a draw and a scale per mask value, a product per output element
           flops=lambda op: 2.0 * _mask_numel(op) + op.out.numel,
           view=_is_view, aliases_input=True,
           bytes_written=lambda op: op.out.nbytes + _mask_bytes(op),
           training_attrs={"training": True}, torch_kernel=_kernel, torch_module=_module,
           doc="dropout with a mask of attrs['mask_shape'] broadcast over the input"),
    OpKind("dropout_broadcast_grad", "elementwise", "backward", flops=lambda op: op.out.numel,
           bytes_read=lambda op: op.in_specs[0].nbytes + _mask_bytes(op),   # dy and the mask
           torch_kernel=_kernel),
)
