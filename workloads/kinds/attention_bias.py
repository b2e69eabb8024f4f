"""A learned per-head table of attention offsets added to the scores, gathered by a constant
index (LeViT's and EfficientFormer's `attention_biases[:, attention_bias_idxs]`): scores
(..., heads, Q, K) plus table (heads, P) read at a (Q, K) index into its P offsets, broadcast
over everything before the heads. The index is a buffer of the model, costed as read with
the table (its values do not change the cost); replay reads the table at a stand-in index of
the same shape (i + j mod P). Its gradient passes dy to the scores and scatter-adds dy, summed
over what the bias broadcast over, into the table."""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, per_input_element, register
from ._torch import torch


def _index(op, device):
    q, k = op.attrs["queries"], op.attrs["keys"]
    offsets = op.attrs["table_shape"][1]
    return ((torch.arange(q, device=device)[:, None] + torch.arange(k, device=device)[None, :])
            % offsets)


def _bias(op, table):
    return table[:, _index(op, table.device)]


def _kernel(op, state):
    owner = op.forward or op.name
    table, = state.params_of(op)
    if op.kind == "attention_bias":
        return lambda x: x + _bias(op, table)

    def attention_bias_grad(dy):
        heads = table.shape[0]
        summed = dy.reshape(-1, heads, *dy.shape[-2:]).sum(0).reshape(heads, -1)
        index = _index(op, dy.device).reshape(-1).expand(heads, -1)
        grad = torch.zeros_like(table).scatter_add_(1, index, summed)
        state.grads[owner] = [grad]
        return grad
    return attention_bias_grad


def _bytes_read(op) -> int:
    """The scores, the bias gathered once (it broadcasts over the batch) and its int64 index."""
    q, k = op.attrs["queries"], op.attrs["keys"]
    width = int(op.attrs.get("param_dtype_bytes", op.out.dtype_bytes))
    return op.in_specs[0].nbytes + op.attrs["table_shape"][0] * q * k * width + q * k * 8


register(
    OpKind("attention_bias", "elementwise", flops=lambda op: float(op.out.numel),
           bytes_read=_bytes_read, backward=backward_rules.route_and_parameter_gradient,
           param_shapes=lambda op: [tuple(op.attrs["table_shape"])],
           param_tensors=lambda op: 1, torch_kernel=_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] + _bias(op, m._p(i, 0)),
           doc="scores (..., heads, Q, K) plus a learned (heads, P) table read at a constant "
               "(Q, K) index (attrs: queries, keys, table_shape)"),
    OpKind("attention_bias_grad", "elementwise", "backward", flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_kernel),
)
