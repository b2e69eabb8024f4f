"""Kinds of windowed attention (Swin, MaxViT): the cyclic shift of the windows (torch.roll) and
the zero padding of height and width up to whole windows (F.pad of an (N, H, W, C) map), and
the relative-coordinate index of a window that their learned position bias is read at (the
bias itself is the attention_bias kind, index "window")."""
from __future__ import annotations

from ._registry import OpKind, per_element, register
from ._torch import F, torch

_no_arithmetic = per_element(0.0)


def relative_position_index(window: int):
    """The (T, T) index into a ((2s-1)^2, heads) table of an s x s window (T = s * s), as
    Swin and MaxViT build it: row offset times (2s-1) plus column offset."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


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
