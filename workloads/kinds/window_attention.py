"""Kinds of windowed attention (Swin, MaxViT): the cyclic shift of the windows (torch.roll) and
the constant padding of height and width (F.pad of an (N, H, W, C) map up to whole windows, or
of the last two dimensions: timm's "same" padding, CoaT's class-token row), and
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


def _padded_dims(op) -> tuple[int, int]:
    """The dimensions padded: (1, 2), height and width of (N, H, W, C), unless attrs say."""
    rank = len(op.in_specs[0].shape if op.kind == "pad_spatial" else op.out.shape)
    return tuple(d % rank for d in op.attrs.get("dims", (1, 2)))   # type: ignore[return-value]


def _pad_kernel(op, state):
    """F.pad of two dimensions with a constant (zeros unless attrs say); the gradient is the
    slice of dy without the padding."""
    bottom, right = op.attrs["pad"]
    top, left = op.attrs.get("pad_before", (0, 0))
    dim_h, dim_w = _padded_dims(op)
    if op.kind == "pad_spatial":
        rank = len(op.in_specs[0].shape)
        pads: list[int] = []
        for d in reversed(range(dim_h, rank)):   # F.pad lists the last dimension first
            pads += (left, right) if d == dim_w else (top, bottom) if d == dim_h else (0, 0)
        if "mode" in op.attrs:   # reflect or replicate: border values copied
            return lambda x: F.pad(x, pads, mode=op.attrs["mode"])
        value = float(op.attrs.get("value", 0.0))
        return lambda x: F.pad(x, pads, value=value)
    if "mode" in op.attrs:
        return _border_pad_grad(op, [left, right, top, bottom])
    if min(top, bottom, left, right) < 0:   # a crop: dy padded back (F.pad's backward)
        rank = len(op.out.shape)
        unpad: list[int] = []
        for d in reversed(range(dim_h, rank)):
            unpad += (-left, -right) if d == dim_w else (-top, -bottom) if d == dim_h else (0, 0)
        return lambda dy: F.pad(dy, unpad)
    index = [slice(None)] * len(op.out.shape)
    index[dim_h] = slice(top, top + op.out.shape[dim_h])
    index[dim_w] = slice(left, left + op.out.shape[dim_w])
    return lambda dy: dy[tuple(index)].contiguous()


def _border_pad_grad(op, pads: list[int]):
    """The gradient of a reflected or replicated pad: each border value's copies summed back
    into it, by PyTorch's own backward kernel (it reads the input only for its shape)."""
    backward = getattr(torch.ops.aten, {"reflect": "reflection_pad2d_backward",
                                        "replicate": "replication_pad2d_backward"}
                       [op.attrs["mode"]])
    shaped: dict = {}

    def grad(dy):
        like = shaped.setdefault((dy.device, dy.dtype), torch.empty(
            op.out.shape, device=dy.device, dtype=dy.dtype))
        return backward(dy, like, pads)
    return grad


register(
    OpKind("roll", "data_movement", flops=_no_arithmetic, torch_kernel=_roll_kernel,
           doc="torch.roll(x, shifts, dims): a copy with the values shifted cyclically"),
    OpKind("roll_grad", "data_movement", "backward", flops=_no_arithmetic,
           torch_kernel=_roll_kernel, doc="dy rolled back"),
    OpKind("pad_spatial", "data_movement", flops=_no_arithmetic, torch_kernel=_pad_kernel,
           doc="F.pad of two dimensions with a constant, a copy: rows after the height and "
               "columns after the width (attrs: pad (bottom, right)), before them (pad_before "
               "(top, left), default none; a negative pad crops), of dims (default (1, 2): H "
               "and W of (N, H, W, C); (2, 3) for (N, C, H, W)), filled with value (default 0), "
               "or with the border values reflected or replicated (mode: F.pad's, of the last "
               "two dimensions): the same copy either way"),
    OpKind("pad_spatial_grad", "data_movement", "backward", flops=_no_arithmetic,
           torch_kernel=_pad_kernel, doc="the slice of dy without the padding (with a mode: "
                                         "dy's border copies summed back into the input)"),
)
