"""Kinds of windowed attention (Swin, MaxViT): the learned relative position bias added to the
attention scores, the cyclic shift of the windows (torch.roll) and the zero padding of height
and width up to whole windows (F.pad of an (N, H, W, C) map).

relative_position_bias: scores (..., heads, T, T) plus table[index] seen as (heads, T, T),
broadcast over everything before the heads; the table is ((2s-1)^2, heads) for an s x s
window and the index the standard relative-coordinate one (every window of the model uses
the same). Its gradient passes dy to the scores and scatter-adds dy, summed over what the bias
broadcast over, into the table.
"""
from __future__ import annotations

import math

from . import backward_rules
from ._registry import OpKind, per_element, per_input_element, register
from ._torch import F, torch

_no_arithmetic = per_element(0.0)


def relative_position_index(window: int):
    """The (T, T) index into a ((2s-1)^2, heads) table of an s x s window (T = s * s), as
    Swin and MaxViT build it: row offset times (2s-1) plus column offset."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def _bias(op, table):
    t = op.attrs["tokens"]
    index = relative_position_index(math.isqrt(t)).to(table.device)
    return table[index.reshape(-1)].view(t, t, -1).permute(2, 0, 1).contiguous()


def _bias_kernel(op, state):
    owner = op.forward or op.name
    table, = state.params_of(op)
    if op.kind == "relative_position_bias":
        return lambda x: x + _bias(op, table)

    def relative_position_bias_grad(dy):
        t = op.attrs["tokens"]
        heads = dy.shape[-3]
        summed = dy.reshape(-1, heads, t, t).sum(0).permute(1, 2, 0).reshape(-1, heads)
        index = relative_position_index(math.isqrt(t)).to(dy.device).reshape(-1)
        grad = torch.zeros_like(table).index_add_(0, index, summed)
        state.grads[owner] = [grad]
        return grad
    return relative_position_bias_grad


def _bias_bytes_read(op) -> int:
    """The scores and the bias, gathered once (it broadcasts over the batch and windows)."""
    t = op.attrs["tokens"]
    width = int(op.attrs.get("param_dtype_bytes", op.out.dtype_bytes))
    return op.in_specs[0].nbytes + op.out.shape[-3] * t * t * width


def _roll_kernel(op, state):
    shifts, dims = tuple(op.attrs["shifts"]), tuple(op.attrs["dims"])
    if op.kind == "roll":
        return lambda x: torch.roll(x, shifts, dims)
    return lambda dy: torch.roll(dy, tuple(-s for s in shifts), dims)


def _pad_kernel(op, state):
    """F.pad of (N, H, W, C) with zeros after height and width; the gradient is the slice."""
    bottom, right = op.attrs["pad"]
    if op.kind == "pad_spatial":
        return lambda x: F.pad(x, (0, 0, 0, right, 0, bottom))
    h, w = op.out.shape[1:3]
    return lambda dy: dy[:, :h, :w, :].contiguous()


register(
    OpKind("relative_position_bias", "elementwise", flops=lambda op: float(op.out.numel),
           bytes_read=_bias_bytes_read, backward=backward_rules.route_and_parameter_gradient,
           param_shapes=lambda op: [tuple(op.attrs["table_shape"])],
           param_tensors=lambda op: 1, torch_kernel=_bias_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] + _bias(op, m._p(i, 0)),
           doc="scores (..., heads, T, T) plus a learned relative position table gathered "
               "to (heads, T, T) (attrs: tokens T, table_shape)"),
    # dy summed over what the bias broadcast over, scattered into the table
    OpKind("relative_position_bias_grad", "elementwise", "backward",
           flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_bias_kernel),
    OpKind("roll", "data_movement", flops=_no_arithmetic, torch_kernel=_roll_kernel,
           doc="torch.roll(x, shifts, dims): a copy with the values shifted cyclically"),
    OpKind("roll_grad", "data_movement", "backward", flops=_no_arithmetic,
           torch_kernel=_roll_kernel),
    OpKind("pad_spatial", "data_movement", flops=_no_arithmetic, torch_kernel=_pad_kernel,
           doc="F.pad of an (N, H, W, C) map with zero rows after the height and columns "
               "after the width (attrs: pad (bottom, right)), a copy"),
    OpKind("pad_spatial_grad", "data_movement", "backward", flops=_no_arithmetic,
           torch_kernel=_pad_kernel),
)
