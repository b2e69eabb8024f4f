"""How torch_import lowers complex views of real tensors as rotary embeddings use them (Meta's
reference LLaMA, Hugging Face's Llama 4): `torch.view_as_complex` of (N, ..., D, 2) real and
imaginary parts (a view: a pending complex value of that real tensor), its product with a
complex tensor made of buffers and constants (the rotary table, `torch.polar` of the angles:
one `mul_table_complex` op, PyTorch's one kernel, the table getting no gradient) and
`torch.view_as_real` back (a view). Any other use of a complex value is refused by name.

`ComplexLowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

from .torch_operands import _Aux
from .torch_state import LoweringState
from .torch_values import _Param, _Pending


def _is_complex(v) -> bool:
    return isinstance(v, _Pending) and v.kind == "complex"


class ComplexLowering(LoweringState):
    def complex_handlers(self, torch) -> dict:
        """Functions lowered here."""
        return {torch.view_as_complex: self._view_as_complex,
                torch.view_as_real: self._view_as_real}

    def _view_as_complex(self, node):
        x = self.tensor(node.args[0])
        shape = self.b.spec(x).shape
        if len(shape) < 3 or shape[-1] != 2:
            raise self.unsupported(f"views {shape} as complex; only (N, ..., D, 2) real and "
                                   "imaginary parts after the batch are supported")
        return _Pending("complex", x)

    def _view_as_real(self, node):
        v = self.value(node.args[0])
        if not _is_complex(v):
            raise self.unsupported("views as real a complex tensor that view_as_complex did "
                                   "not make of the model's activations")
        return v.source

    def complex_product(self, a):
        """z * table (or table * z) of a complex view z and a complex table of buffers and
        constants broadcast over it (a rotary embedding's, (S, 1, D) against (N, S, H, D)):
        one mul_table_complex op on z's (..., D, 2) parts, its result complex again; None
        where neither factor is complex."""
        vx, vy = (self.value(a[k]) for k in ("input", "other"))
        if not (_is_complex(vx) or _is_complex(vy)):
            return None
        z, table = (vx, vy) if _is_complex(vx) else (vy, vx)
        if not (isinstance(table, _Aux) or isinstance(table, _Param) and not
                table.is_parameter):
            raise self.unsupported("multiplies a complex tensor by a tensor computed from the "
                                   "input or by a parameter; only a product with a complex "
                                   "table of buffers and constants (a rotary embedding's) is "
                                   "supported")
        parts = self.b.spec(z.source).shape
        shape, table_shape = parts[:-1], tuple(int(d) for d in table.shape)
        while len(table_shape) > 1 and table_shape[0] == 1:
            table_shape = table_shape[1:]      # leading ones broadcast away
        if len(table_shape) >= len(shape) or any(
                t not in (1, s) for t, s in zip(reversed(table_shape), reversed(shape),
                                                strict=False)):
            raise self.unsupported(f"multiplies complex {shape} by a table {tuple(table.shape)}"
                                   "; only a table broadcast over the batch and the trailing "
                                   "dimensions is supported")
        out = self._op("mul_table_complex", [z.source], parts, self.name("mul_table_complex"),
                       {"table_shape": table_shape})
        return _Pending("complex", out)
