"""The gated linear unit and the maximum over trailing dimensions.

- glu: F.glu(x, dim), the first half of x along `dim` times the sigmoid of the second half
  (a Conformer's convolution module); one ATen kernel reads x and writes the half-size output,
  and its gradient (glu_backward) reads dy and the saved input and writes x's shape.
- amax: the maximum over the trailing `reduced_dims` dimensions, keepdim or not
  (torch.amax, and torch.max(x, dim)'s values: PointNet's max over points); its gradient
  sends dy to the positions that held the maximum, autograd's dy * (x == max) for amax,
  reading dy, the saved input and output.
FLOPs are nominal (a sigmoid as a few, a comparison as one); a calibrated profile measures
what each really costs.
"""
from __future__ import annotations

from ._registry import OpKind, per_element, per_input_element, register, shape_layout
from ._torch import F, aten, torch
from .pointwise_math import reduced_dims


def _glu_kernel(op, state):
    dim = op.attrs["dim"]
    if op.kind == "glu":
        return lambda x: F.glu(x, dim)
    return lambda dy, x: aten.glu_backward(dy, x, dim)


def _amax_kernel(op, state):
    dims, keepdim = reduced_dims(op), op.attrs["keepdim"]
    if op.kind == "amax":
        return lambda x: torch.amax(x, dims, keepdim)
    kept = tuple(1 if d in dims else s for d, s in enumerate(op.out.shape))
    return lambda dy, x, y: dy.reshape(kept) * (x == y.reshape(kept))


register(
    # a sigmoid of one half (its nominal 5 FLOPs) and a product
    OpKind("glu", "elementwise", flops=per_element(6.0), saves=("in",),
           torch_kernel=_glu_kernel,
           doc="F.glu(x, dim): the first half along dim times the sigmoid of the second"),
    OpKind("glu_grad", "elementwise", "backward", flops=per_element(4.0),
           torch_kernel=_glu_kernel, doc="glu_backward: the gradient of both halves"),
    # one comparison per value read
    OpKind("amax", "normalization", flops=per_input_element(1.0), saves=("in", "out"),
           torch_kernel=_amax_kernel,
           doc="the maximum over the trailing `reduced_dims` dimensions (keepdim or not)"),
    # keyed on what it writes, the input's shape
    OpKind("amax_grad", "normalization", "backward", flops=per_element(2.0),
           layout=lambda op: shape_layout(op.out.shape), torch_kernel=_amax_kernel,
           doc="dy where the input held the maximum, zero elsewhere"),
)
