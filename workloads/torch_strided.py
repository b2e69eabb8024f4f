"""Strided slices as PyTorch runs them: `x[..., a::s]` is a view (the same storage, a stride of
s), never a copy. The IR's views are contiguous ranges and reshapes, so the view is built from
them: the range [b, b + n*s) of the dimension (b the multiple of s at or below a), seen as
(n, s), its column a - b taken and the column dimension dropped; every step a view, the values
PyTorch's view holds. Where the range overruns the dimension (seven values taken two by two)
that construction does not exist, and the slice is costed as an `index_select` copy.

A reader that needs contiguous memory copies the view first, inside its kernel (the CPU's
linear, matmul, convolution, softmax and layer norm call `.contiguous()`, as torch.profiler
shows: an aten::clone under the op); that copy is the `contiguous` op put after the view. The
readers that take strides as they are (TensorIterator's elementwise ops and reductions, cat and
stack, views) are listed below; every other reader gets the copy. A reshape or flatten is
lowered where it stands: a view where PyTorch's strides allowed one, else a copy (read off the
traced run). torch is never imported at module level.
"""
from __future__ import annotations

import operator

from .torch_state import LoweringState

# Tensor methods that read a strided tensor as it is (TensorIterator, views, metadata).
STRIDED_READER_METHODS = frozenset({
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "pow", "square",
    "sqrt", "rsqrt", "sigmoid", "sigmoid_", "tanh", "tanh_", "relu", "relu_", "clamp", "clip",
    "float", "to", "type", "type_as", "masked_fill", "masked_fill_", "mean", "sum", "view",
    "reshape", "flatten", "contiguous", "unsqueeze", "squeeze", "size", "dim", "expand",
    "expand_as",
})
_OPERATORS = (operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
              operator.getitem, operator.iadd, operator.isub, operator.imul, operator.itruediv)
_TORCH_FUNCTIONS = ("add", "sub", "mul", "div", "neg", "cat", "concat", "stack", "where",
                    "sigmoid", "tanh", "relu", "sqrt", "rsqrt", "pow", "square", "mean", "sum",
                    "flatten", "reshape", "unsqueeze", "squeeze", "sin", "cos", "erf")
_F_FUNCTIONS = ("relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "leaky_relu", "elu",
                "hardswish", "hardsigmoid", "mish", "softplus", "dropout")
_MODULES = ("ReLU", "ReLU6", "GELU", "SiLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU",
            "Hardswish", "Hardsigmoid", "Mish", "Softplus", "Dropout", "Identity", "Flatten")


def strided_reader_functions(torch) -> frozenset:
    """Functions that read a strided tensor as it is."""
    F = torch.nn.functional
    return frozenset((*_OPERATORS, *(getattr(torch, n) for n in _TORCH_FUNCTIONS),
                      *(getattr(F, n) for n in _F_FUNCTIONS)))


def reads_strided(torch, node, modules: dict) -> bool:
    """Whether every reader of fx `node` takes its strides as they are (no copy first)."""
    functions = strided_reader_functions(torch)
    module_types = tuple(getattr(torch.nn, n) for n in _MODULES)
    for user in node.users:
        if user.op == "output":
            continue
        if user.op == "call_function" and user.target in functions:
            continue
        if user.op == "call_method" and user.target in STRIDED_READER_METHODS:
            continue
        if user.op == "call_module" and isinstance(modules.get(user.target), module_types):
            continue
        return False
    return True


class StridedViewLowering(LoweringState):
    """A mixin of torch_import._Lowering (after ViewLowering and SelectionLowering)."""

    def strided_view(self, x: str, dim: int, index: slice) -> tuple[str, bool]:
        """x[..., start:stop:step] along `dim`: (the tensor, whether it is a view)."""
        shape = self.b.spec(x).shape
        start, stop, step = index.indices(shape[dim])
        count = len(range(start, stop, step))
        if count == 0:
            raise self.unsupported(f"takes no values of dimension {dim} ({index!r})")
        if count == 1:
            return self.b.slice(x, start, start + 1, dim=dim, name=self.name("slice")), True
        # the rows [base, base + count * step) seen as (count, step): column `start - base`
        base = start - start % step
        if base + count * step > shape[dim]:
            return self.index_select(x, dim, list(range(start, stop, step))), False
        if (base, base + count * step) != (0, shape[dim]):
            x = self.b.slice(x, base, base + count * step, dim=dim, name=self.name("slice"))
        before, after = shape[:dim], shape[dim + 1:]
        # why not the builder's reshape: it copies a permuted input, and splitting one
        # dimension (or dropping one of size 1) is a view of any strides
        x = self._op("reshape", [x], (*before, count, step, *after), self.name("strided"))
        x = self.b.slice(x, start - base, start - base + 1, dim=dim + 1, name=self.name("slice"))
        return self._op("reshape", [x], (*before, count, *after), self.name("strided")), True
