"""Values selected along the last dimension with their positions, and the fused scale and shift.

- select_values: torch.max / torch.min(x, dim) (attrs op "max" or "min", keepdim),
  torch.topk(x, k) (op "topk", largest) and torch.sort(x) (op "sort", descending), each over
  the last dimension (the importer permutes another one last, a view). One ATen kernel reads
  x and writes the values and their int64 positions (8 bytes each), which autograd keeps for
  the gradient: `select_values_grad` (PyTorch's value_selecting_reduction_backward) writes
  zeros of x's shape and scatters dy into the positions, reading dy and the positions. The
  positions are no tensor of the graph: they are counted in the bytes the kernels write and
  read, and held for the gradient as the output's saved tensor (as many values; PyTorch's
  are int64, twice a float32's bytes). FLOPs are nominal comparisons: one per value read for
  a max, log2(k) for top-k's heap, log2(n) for a sort of n.
- addcmul: torch.addcmul(b, w, x), b + w * x with a learned shift b and scale w of
  attrs['param_shape'] broadcast over x (ConvNeXt-V2's global response norm): one kernel
  reading x and writing its shape. Its gradient, one op here, makes dx = dy * w and the
  parameters' gradients, the sums of dy * x and of dy where they broadcast.
"""
from __future__ import annotations

import math

from ._registry import OpKind, per_element, register, shape_layout
from ._torch import torch

INDEX_BYTES = 8   # int64 positions


def _row(op) -> int:
    """Values each row (the selected dimension) holds in the input."""
    return int((op.in_specs[0] if op.phase == "forward" else op.out).shape[-1])


def _comparisons_per_value(op) -> float:
    kind, n = op.attrs["op"], _row(op)
    if kind in ("max", "min"):
        return 1.0
    if kind == "topk":
        return max(1.0, math.log2(max(2, int(op.attrs["k"]))))
    return max(1.0, math.log2(max(2, n)))


def _selected(op) -> int:
    """Values (and positions) the forward writes: its output's, or its gradient's dy's."""
    return op.out.numel if op.phase == "forward" else op.in_specs[0].numel


def _select_kernel(op, state):
    a, owner = op.attrs, op.forward or op.name
    if op.phase == "forward":
        def select(x):
            if a["op"] in ("max", "min"):
                values, positions = getattr(torch, a["op"])(x, -1, bool(a["keepdim"]))
            elif a["op"] == "topk":
                values, positions = torch.topk(x, int(a["k"]), -1, bool(a["largest"]))
            else:
                values, positions = torch.sort(x, -1, bool(a["descending"]))
            if state is not None:
                state.saved[owner] = positions
            return values
        return select

    def select_values_grad(dy, *saved):
        kept = dy if dy.dim() == len(op.out.shape) else dy.unsqueeze(-1)
        positions = state.saved.get(owner) if state is not None else None
        if positions is not None and positions.dim() < kept.dim():
            positions = positions.unsqueeze(-1)
        if positions is None or positions.shape != kept.shape:   # run alone: any positions
            positions = torch.randint(0, op.out.shape[-1], kept.shape, device=dy.device)
        return torch.zeros(op.out.shape, device=dy.device, dtype=dy.dtype).scatter(
            -1, positions, kept)
    return select_values_grad


def _addcmul_kernel(op, state):
    scale, shift = state.params_of(op)
    if op.phase == "forward":
        return lambda x: torch.addcmul(shift, scale, x)
    owner = op.forward or op.name

    def addcmul_grad(dy, x):
        state.grads[owner] = [(dy * x).sum_to_size(scale.shape), dy.sum_to_size(shift.shape)]
        return dy * scale
    return addcmul_grad


def _param_shapes(op):
    return [tuple(op.attrs["param_shape"])] * 2


register(
    OpKind("select_values", "normalization",
           flops=lambda op: _comparisons_per_value(op) * op.in_specs[0].numel,
           bytes_written=lambda op: op.out.nbytes + INDEX_BYTES * op.out.numel,
           saves=("out",), torch_kernel=_select_kernel,
           doc="max / min over the last dimension, or its top k or sort (attrs op, k, "
               "keepdim, largest, descending): the values; their int64 positions written "
               "beside them"),
    OpKind("select_values_grad", "normalization", "backward", flops=per_element(1.0),
           layout=lambda op: shape_layout(op.out.shape),
           bytes_read=lambda op: op.in_specs[0].nbytes + INDEX_BYTES * _selected(op),
           torch_kernel=_select_kernel,
           doc="zeros of the input's shape with dy scattered into the saved positions"),
    OpKind("addcmul", "elementwise", flops=per_element(2.0), saves=("in",),
           reads_params=True, param_shapes=_param_shapes, param_tensors=lambda op: 2,
           param_init="scale_shift", torch_kernel=_addcmul_kernel,
           torch_module=lambda op, m, i: lambda ins: torch.addcmul(m._p(i, 1), m._p(i, 0),
                                                                  ins[0]),
           doc="b + w * x, a learned scale w and shift b of attrs['param_shape'] broadcast "
               "over x, in one kernel"),
    # dy * w, dy * x and the sums of it and of dy where the parameters broadcast
    OpKind("addcmul_grad", "elementwise", "backward", flops=per_element(4.0),
           carries_params=True, torch_kernel=_addcmul_kernel,
           doc="dy * w, and the scale's and shift's gradients"),
)
