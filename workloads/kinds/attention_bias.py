"""A learned table of attention offsets gathered at a constant index and added to the scores:
scores (..., heads, Q, K) plus the table read at a (Q, K) index into its P offsets per head,
broadcast over everything before the heads. One kind for the layouts models hold it in:

- table_layout "heads_positions", a (heads, P) table read as `table[:, index]` (LeViT's and
  EfficientFormer's `attention_biases[:, attention_bias_idxs]`);
- table_layout "positions_heads", a (P, heads) table read as
  `table[index.view(-1)].view(Q, K, heads).permute(2, 0, 1)` (Swin's and MaxViT's relative
  position bias, BEiT's with its class-token rows).

The index is a buffer of the model (its values do not change the cost). Replay reads the
table at the index the model builds where the op names it (index "window": the relative
coordinates of an s x s window, Q = K = s * s) and otherwise at a stand-in index of the same
shape ((i + j) mod P). Its gradient passes dy to the scores and scatter-adds dy, summed over
what the bias broadcast over, into the table.
"""
from __future__ import annotations

import math

from . import backward_rules
from ._registry import KindError, OpKind, per_input_element, register
from ._torch import torch
from .window_attention import relative_position_index

LAYOUTS = ("heads_positions", "positions_heads")
INDEXES = ("constant", "window")


def _layout(op) -> str:
    layout = op.attrs.get("table_layout", "heads_positions")
    if layout not in LAYOUTS:
        raise KindError(f"op {op.name!r}: table_layout {layout!r} is not one of "
                        f"{', '.join(LAYOUTS)}")
    return layout


def _heads_and_positions(op) -> tuple[int, int]:
    a, b = op.attrs["table_shape"]
    return (a, b) if _layout(op) == "heads_positions" else (b, a)


def _index(op, device):
    """The (Q, K) index into the table's P offsets."""
    q, k = op.attrs["queries"], op.attrs["keys"]
    if op.attrs.get("index", "constant") == "window":
        return relative_position_index(math.isqrt(q)).to(device)
    offsets = _heads_and_positions(op)[1]
    return ((torch.arange(q, device=device)[:, None] + torch.arange(k, device=device)[None, :])
            % offsets)


def _bias(op, table):
    """The (heads, Q, K) offsets."""
    index = _index(op, table.device)
    if _layout(op) == "heads_positions":
        return table[:, index]
    return table[index.reshape(-1)].view(*index.shape, -1).permute(2, 0, 1).contiguous()


def _kernel(op, state):
    owner = op.forward or op.name
    table, = state.params_of(op)
    if op.kind == "attention_bias":
        return lambda x: x + _bias(op, table)

    def attention_bias_grad(dy):
        heads = _heads_and_positions(op)[0]
        summed = dy.reshape(-1, heads, *dy.shape[-2:]).sum(0).reshape(heads, -1)
        index = _index(op, dy.device).reshape(-1)
        if _layout(op) == "heads_positions":
            grad = torch.zeros_like(table).scatter_add_(1, index.expand(heads, -1), summed)
        else:
            grad = torch.zeros_like(table).index_add_(0, index, summed.t())
        state.grads[owner] = [grad]
        return grad
    return attention_bias_grad


def _bytes_read(op) -> int:
    """The scores, the bias gathered once (it broadcasts over the batch and windows) and the
    int64 (Q, K) index; index "window" leaves the index out (a known undercount of Q * K * 8
    bytes, kept so that Swin's and MaxViT's figures stay those their tests pin)."""
    q, k = op.attrs["queries"], op.attrs["keys"]
    width = int(op.attrs.get("param_dtype_bytes", op.out.dtype_bytes))
    index_bytes = q * k * 8 if op.attrs.get("index", "constant") == "constant" else 0
    return op.in_specs[0].nbytes + _heads_and_positions(op)[0] * q * k * width + index_bytes


register(
    OpKind("attention_bias", "elementwise", flops=lambda op: float(op.out.numel),
           bytes_read=_bytes_read, backward=backward_rules.route_and_parameter_gradient,
           param_shapes=lambda op: [tuple(op.attrs["table_shape"])],
           param_tensors=lambda op: 1, torch_kernel=_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] + _bias(op, m._p(i, 0)),
           doc="scores (..., heads, Q, K) plus a learned table of P offsets per head read at "
               "a constant (Q, K) index (attrs: queries, keys, table_shape; table_layout "
               "'heads_positions' (heads, P) or 'positions_heads' (P, heads); index "
               "'constant' or 'window', the relative coordinates of an s x s window)"),
    # dy summed over what the bias broadcast over, scattered into the table
    OpKind("attention_bias_grad", "elementwise", "backward", flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_kernel,
           doc="dy summed over what the bias broadcast over, scatter-added into the table"),
)
