"""Rows picked by a constant index: x[:, [-1], :], x[:, perm], x.index_select(d, buffer) and
torch.gather with a buffer index that is the same along the other dimensions. PyTorch copies
the rows it picks (advanced indexing is a gather, never a view); its gradient is autograd's
index_select_backward, zeros of the input's shape with dy added at the rows picked
(index_add_), so a row picked twice gets both contributions.

One row per sample at a position that differs by sample, x[torch.arange(N), positions]
(GPT-2's classifier: the last token that is not padding, found from the ids), or K rows per
sample (torch.gather by a per-sample shuffle: ViT-MAE's kept patches) is take_per_sample:
the same copy whichever rows the positions pick, so its cost needs only their count; its
gradient is autograd's index_put_ (accumulate) into zeros."""
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


def _positions(op, dev=None):
    """One position per sample along dimension 1, or attrs["rows"] distinct ones (a shuffle's
    first: (N, K)); the run's own depend on its data, the time does not."""
    n, length = op.in_specs[-1].shape[:2] if op.kind == "take_per_sample" else \
        op.out.shape[:2]
    gen = torch.Generator().manual_seed(0)
    if "rows" in op.attrs:
        shuffled = torch.rand(n, length, generator=gen).argsort(1)[:, :op.attrs["rows"]]
        return torch.arange(n, device=dev)[:, None], shuffled.to(dev)
    return torch.arange(n, device=dev), torch.randint(0, length, (n,), generator=gen).to(dev)


def _per_sample_kernel(op, state):
    rows, positions = _positions(op, state.dev if state is not None else None)
    if op.kind == "take_per_sample":
        return lambda x: x[rows.to(x.device), positions.to(x.device)]
    shape = tuple(op.out.shape)
    return lambda dy: torch.zeros(shape, dtype=dy.dtype, device=dy.device).index_put_(
        (rows.to(dy.device), positions.to(dy.device)), dy, accumulate=True)


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
    OpKind("take_per_sample", "data_movement", flops=lambda op: 0.0,
           bytes_read=lambda op: op.out.nbytes, torch_kernel=_per_sample_kernel,
           doc="x[torch.arange(N), positions]: one row of dimension 1 per sample, at a "
               "position that differs by sample (a classifier's last real token); with attrs "
               "rows K, K rows per sample (torch.gather by a per-sample shuffle)"),
    OpKind("take_per_sample_grad", "data_movement", "backward",
           flops=lambda op: float(op.in_specs[0].numel),
           bytes_written=lambda op: op.out.nbytes + op.in_specs[0].nbytes,
           torch_kernel=_per_sample_kernel,
           doc="zeros of the input's shape, dy put at each sample's row"),
)
