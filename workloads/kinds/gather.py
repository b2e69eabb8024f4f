"""Rows picked by a constant index: x[:, [-1], :], x[:, perm], x.index_select(d, buffer) and
torch.gather with a buffer index that is the same along the other dimensions. PyTorch copies
the rows it picks (advanced indexing is a gather, never a view); its gradient is autograd's
index_select_backward, zeros of the input's shape with dy added at the rows picked
(index_add_), so a row picked twice gets both contributions."""
from __future__ import annotations

from ._registry import OpKind, register
from ._torch import torch


def _index(op, dev=None):
    return torch.tensor(op.attrs["index"], dtype=torch.long, device=dev)


def _kernel(op, state):
    dim = op.attrs["dim"]
    dev = state.dev if state is not None else None
    index = _index(op, dev)
    if op.kind == "index_select":
        return lambda x: torch.index_select(x, dim, index.to(x.device))
    shape = tuple(op.out.shape)
    return lambda dy: torch.zeros(shape, dtype=dy.dtype, device=dy.device).index_add_(
        dim, index.to(dy.device), dy)


register(
    # reads the rows it picks, writes them: a memory-bound copy
    OpKind("index_select", "data_movement", flops=lambda op: 0.0,
           bytes_read=lambda op: op.out.nbytes, torch_kernel=_kernel,
           doc="the rows `index` (constant, non-negative) of dimension `dim` after the batch, "
               "copied (x[:, [i, j]], index_select of a buffer)"),
    # zero the input's shape, add dy at the rows picked: one addition per value of dy
    OpKind("index_select_grad", "data_movement", "backward",
           flops=lambda op: float(op.in_specs[0].numel),
           bytes_written=lambda op: op.out.nbytes + op.in_specs[0].nbytes,
           torch_kernel=_kernel, doc="zeros of the input's shape, dy added at the rows picked"),
)
