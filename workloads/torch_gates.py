"""How torch_import lowers the gated linear unit, maxima and L2 norms over dimensions after
the batch and the L2 normalisation: F.glu / nn.GLU (a `glu` op, workloads/kinds/glu_amax.py),
torch.amax and torch.max(x, dim) (an `amax` op; max's indices are no tensor of the graph, and
an op reading them is refused), Tensor.norm(p=2, dim) and torch.linalg.vector_norm (a
`vector_norm` op), each over dimensions that are not the trailing ones permuted last first (a
view), F.normalize(x, dim=-1) (an `l2_normalize` op, a CLIP embedding's; over another
dimension after the batch, SSD's over the channels, the dimension permuted last and back,
views). The global max (over the batch too), the elementwise maximum of two tensors and a
norm other than L2 stay out of scope.

`GateLowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

from .torch_state import LoweringState
from .torch_values import _Const, _Param


def _sig_glu(input, dim=-1): ...
def _sig_max(input, dim=None, keepdim=False): ...
def _sig_normalize(input, p=2.0, dim=1, eps=1e-12, out=None): ...
def _sig_addcmul(input, tensor1, tensor2, *, value=1): ...
def _sig_norm(input, p="fro", dim=None, keepdim=False, dtype=None): ...
def _sig_vector_norm(input, ord=2, dim=None, keepdim=False, *, dtype=None): ...


class GateLowering(LoweringState):
    def gate_handlers(self, torch) -> tuple[dict, dict, dict]:
        """(functions, Tensor methods, modules) lowered here."""
        functions = {torch.nn.functional.glu: self._glu_fn, torch.amax: self._amax_fn,
                     torch.max: self._max_fn, torch.nn.functional.normalize: self._normalize,
                     torch.norm: self._vector_norm, torch.linalg.vector_norm: self._vector_norm,
                     torch.addcmul: self._addcmul}
        methods = {"amax": self._amax_fn, "max": self._max_fn, "norm": self._vector_norm}
        modules = {torch.nn.GLU: lambda m, node, x: self.glu(x(), m.dim)}
        return functions, methods, modules

    def glu(self, x: str, dim: int) -> str:
        shape = self.b.spec(x).shape
        d = dim % len(shape)
        if d == 0 or shape[d] % 2:
            raise self.unsupported(f"gates dimension {dim} of {shape}; only an even dimension "
                                   "after the batch is supported")
        out = (*shape[:d], shape[d] // 2, *shape[d + 1:])
        return self._op("glu", [x], out, self.name("glu"), {"dim": d})

    def _glu_fn(self, node):
        a = self.bind(_sig_glu, node)
        return self.glu(self.tensor(a["input"]), int(a["dim"]))

    def _amax(self, node, dims, keepdim: bool) -> str:
        x = self.tensor(node.args[0])
        rank = len(self.b.spec(x).shape)
        dims = dims if isinstance(dims, (list, tuple)) else (dims,)
        reduced = sorted({int(d) % rank for d in dims}) if dims and dims[0] is not None else []
        if not reduced or 0 in reduced:
            raise self.unsupported(f"takes the maximum over dims {dims!r}; only the maximum "
                                   "over dimensions after the batch is supported")
        return self.reduce_inner(x, "amax", reduced, bool(keepdim))

    def reduce_inner(self, x: str, kind: str, reduced: list[int], keepdim: bool) -> str:
        """A reduction over trailing dimensions (`kind`: mean, sum, amax, vector_norm) of the
        dimensions `reduced` (after the batch; the trailing ones or not): a permute that puts
        them last where they are not (a view), the reduction, and with keepdim the kept ones
        of size 1 permuted back into place (a view)."""
        rank = len(self.b.spec(x).shape)
        if not reduced or 0 in reduced:
            raise self.unsupported(f"takes a {kind} over dims {reduced}; only dimensions "
                                   "after the batch are supported")
        kept = [d for d in range(rank) if d not in reduced]
        order = (*kept, *reduced)
        moved = x if order == tuple(range(rank)) else self._permuted(x, order, "permute")
        shape = self.b.spec(moved).shape
        shape = (*shape[:len(kept)], *((1,) * len(reduced) if keepdim else ()))
        out = self._op(kind, [moved], shape, self.name(kind),
                       dict(reduced_dims=len(reduced), keepdim=keepdim))
        if not keepdim or moved == x:
            return out
        return self._permuted(out, tuple(order.index(d) for d in range(rank)), "permute")

    def _vector_norm(self, node):
        """The L2 norm over dimensions after the batch (Tensor.norm(p=2, dim),
        torch.linalg.vector_norm: ConvNeXt-V2's global response norm over height and width):
        one vector_norm op, the dimensions permuted last where they are not."""
        linalg = node.target is self.torch.linalg.vector_norm
        a = self.bind(_sig_vector_norm if linalg else _sig_norm, node)
        p = a["ord"] if linalg else a["p"]
        x = self.tensor(a["input"])
        rank = len(self.b.spec(x).shape)
        dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else (a["dim"],)
        if p not in (2, 2.0, "fro") or a["dim"] is None or a["dtype"] is not None:
            raise self.unsupported(f"takes the norm with p={p!r} over dims {a['dim']!r}; only "
                                   "the L2 norm over dimensions after the batch is supported")
        return self.reduce_inner(x, "vector_norm", sorted({int(d) % rank for d in dims}),
                                 bool(a["keepdim"]))

    def _addcmul(self, node):
        """torch.addcmul(b, w, x), b + w * x with a learned shift b and scale w broadcast over
        x (ConvNeXt-V2's global response norm): a layer_scale, then a bias_add, one pass over
        x more than PyTorch's single addcmul kernel."""
        a = self.bind(_sig_addcmul, node)
        scaled = self.param_operand({"input": a["tensor1"], "other": a["tensor2"]}, "mul") \
            if a["value"] == 1 and isinstance(self.value(a["input"]), _Param) else None
        if scaled is None:
            raise self.unsupported("computes b + value * t1 * t2 other than with a learned "
                                   "shift b and scale t1 or t2 (value 1); only those are "
                                   "supported")
        return self.param_operand({"input": scaled, "other": a["input"]}, "add")

    def _amax_fn(self, node):
        a = self.bind(_sig_max, node)
        return self._amax(node, a["dim"], a["keepdim"])

    def _max_fn(self, node):
        """torch.max(x, dim): (the maximum, indices no op computes); max of two tensors or of
        everything is refused."""
        a = self.bind(_sig_max, node)
        if a["dim"] is None or not isinstance(a["dim"], int):
            raise self.unsupported("takes the maximum of everything or of two tensors; only "
                                   "torch.max(x, dim) over a dimension after the batch is "
                                   "supported")
        return (self._amax(node, a["dim"], a["keepdim"]), _Const(None))

    def _normalize(self, node):
        a = self.bind(_sig_normalize, node)
        x = self.tensor(a["input"])
        rank = len(self.b.spec(x).shape)
        dim = int(a["dim"]) % rank
        if float(a["p"]) != 2.0 or dim == 0 or a["eps"] != 1e-12:
            raise self.unsupported(f"normalizes with p={a['p']!r}, dim={a['dim']!r}, "
                                   f"eps={a['eps']!r}; only the L2 norm over a dimension "
                                   "after the batch with PyTorch's eps is supported")
        if dim == rank - 1:
            return self._op("l2_normalize", [x], self.b.spec(x).shape, self.name("normalize"))
        # over another dimension (SSD's L2Norm over the channels): that dimension moved
        # last (a view), the norm, and moved back (a view); the norm reads the strides
        order = (*(d for d in range(rank) if d != dim), dim)
        moved = self._permuted(x, order, "permute")
        y = self._op("l2_normalize", [moved], self.b.spec(moved).shape, self.name("normalize"))
        return self._permuted(y, tuple(order.index(d) for d in range(rank)), "permute")
