"""The gated linear unit, and the maximum and the L2 norm over trailing dimensions.

- glu: F.glu(x, dim), the first half of x along `dim` times the sigmoid of the second half
  (a Conformer's convolution module); one ATen kernel reads x and writes the half-size output,
  and its gradient (glu_backward) reads dy and the saved input and writes x's shape.
- amax: the maximum over the trailing `reduced_dims` dimensions, keepdim or not
  (torch.amax, and torch.max(x, dim)'s values: PointNet's max over points); its gradient
  sends dy to the positions that held the maximum, autograd's dy * (x == max) for amax,
  reading dy, the saved input and output.
- vector_norm: the L2 norm over the trailing `reduced_dims` dimensions, keepdim or not
  (Tensor.norm(p=2, dim), torch.linalg.vector_norm: ConvNeXt-V2's global response norm); one
  kernel reads x and writes the norms, and its gradient, autograd's x * dy / norm, reads dy,
  the saved input and output and writes x's shape.
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


def _vector_norm_kernel(op, state):
    dims, keepdim = reduced_dims(op), op.attrs["keepdim"]
    if op.kind == "vector_norm":
        return lambda x: torch.linalg.vector_norm(x, 2, dims, keepdim)
    kept = tuple(1 if d in dims else s for d, s in enumerate(op.out.shape))
    return lambda dy, x, y: x * (dy.reshape(kept) / y.reshape(kept))


def _reduction(name: str, flops_per_read: float, kernel, doc: str, grad_doc: str):
    """A reduction over trailing dimensions that saves its input and output, and its gradient
    (2 FLOPs per value written), keyed on what it writes, the input's shape."""
    return (OpKind(name, "normalization", flops=per_input_element(flops_per_read),
                   saves=("in", "out"), torch_kernel=kernel, doc=doc),
            OpKind(f"{name}_grad", "normalization", "backward", flops=per_element(2.0),
                   layout=lambda op: shape_layout(op.out.shape), torch_kernel=kernel,
                   doc=grad_doc))


register(
    # a sigmoid of one half (its nominal 5 FLOPs) and a product
    OpKind("glu", "elementwise", flops=per_element(6.0), saves=("in",),
           torch_kernel=_glu_kernel,
           doc="F.glu(x, dim): the first half along dim times the sigmoid of the second"),
    OpKind("glu_grad", "elementwise", "backward", flops=per_element(4.0),
           torch_kernel=_glu_kernel, doc="glu_backward: the gradient of both halves"),
    # one comparison per value read
    *_reduction("amax", 1.0, _amax_kernel,
                "the maximum over the trailing `reduced_dims` dimensions (keepdim or not)",
                "dy where the input held the maximum, zero elsewhere"),
    # a square and an add per value read (the root per output, not counted)
    *_reduction("vector_norm", 2.0, _vector_norm_kernel,
                "the L2 norm over the trailing `reduced_dims` dimensions (keepdim or not)",
                "x * dy / norm: the gradient of the L2 norm"),
)
