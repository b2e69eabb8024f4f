"""How torch_import lowers computation on a parameter alone, before it meets the batch: a
constant and the parameter (`1 - self.mix`: RWKV's token-shift mix), `self.logit_scale.exp()`
(CLIP's temperature). PyTorch runs one kernel on the weights each step, with no batch
dimension: one `weight_affine` or `weight_exp` op holding the parameter (a parameter also read
elsewhere is shared, its gradients summed), whose output then multiplies a tensor as any
factor does (a `mul` broadcast over the batch; its gradient is summed back to the
parameter's shape).

`WeightSideLowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

from .torch_layers import _Param
from .torch_state import LoweringState

WEIGHT_SIDE_KINDS = ("weight_affine", "weight_exp")


class WeightSideLowering(LoweringState):
    def _weight_side_shape(self, param: _Param) -> tuple[int, ...]:
        """The parameter's shape, refused where its first dimension is the batch size:
        micro-batching rescales every tensor whose first dimension is the batch."""
        if param.shape and param.shape[0] == self.b.batch and self.b.batch > 1:
            raise self.unsupported(f"computes on parameter {param.target!r} of shape "
                                   f"{param.shape}, whose first dimension is the batch size "
                                   f"{self.b.batch}; import the model with another batch")
        return param.shape

    def weight_arith(self, a, sign: float) -> str | None:
        """c + w, w + c, c - w, w - c of a parameter w and a constant c: a weight_affine op;
        None where the operands are not a parameter and a constant."""
        vx, vy = (self.value(a[k]) for k in ("input", "other"))
        param = vx if _learned(vx) else vy if _learned(vy) else None
        other = a["other"] if param is vx else a["input"]
        c = self._constant(other) if param is not None else None
        if param is None or c is None or self._constant(a["alpha"]) != 1:
            return None
        # c - w is one rsub kernel: -w + c; w - c is w + (-c)
        scale, shift = (sign, c) if param is vy else (1.0, sign * c)
        out = self._op("weight_affine", [], self._weight_side_shape(param),
                       self.name("weight_affine"),
                       {"scale": float(scale), "shift": float(shift)},
                       params=_numel(param.shape))
        self._claim([param], out)
        return out

    def _weight_exp(self, node):
        param = self.value(node.args[0])
        if not _learned(param):
            raise self.unsupported("takes the exponential of a tensor; only exp of a "
                                   "parameter alone (a learned temperature) is supported")
        out = self._op("weight_exp", [], self._weight_side_shape(param), self.name("weight_exp"),
                       params=_numel(param.shape))
        self._claim([param], out)
        return out

    def weight_factor(self, x: str, y: str) -> str | None:
        """x * y where one is a weight-side tensor (no batch dimension) broadcast over the
        other: one mul of the batch tensor first; None otherwise."""
        kinds = [self.b.graph.op(t).kind for t in (x, y)]
        if kinds[0] in WEIGHT_SIDE_KINDS and kinds[1] not in WEIGHT_SIDE_KINDS:
            x, y = y, x
        elif not (kinds[1] in WEIGHT_SIDE_KINDS and kinds[0] not in WEIGHT_SIDE_KINDS):
            return None
        sx, sw = self.b.spec(x).shape, self.b.spec(y).shape
        if len(sw) > len(sx) or (len(sw) == len(sx) and sw[0] != 1) or any(
                w not in (1, d) for w, d in zip(reversed(sw), reversed(sx), strict=False)):
            raise self.unsupported(f"multiplies {sx} by a learned tensor {sw} that does not "
                                   "broadcast over it without the batch")
        return self._op("mul", [x, y], sx, self.name("mul"), {"broadcast": True})


def _learned(value) -> bool:
    return isinstance(value, _Param) and value.is_parameter


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
