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

import math

from .torch_state import LoweringState
from .torch_values import _Param, _Pending


def _sig_glu(input, dim=-1): ...
def _sig_max(input, dim=None, keepdim=False): ...
def _sig_topk(input, k, dim=-1, largest=True, sorted=True): ...
def _sig_sort(input, dim=-1, descending=False, stable=False): ...
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
                     torch.addcmul: self._addcmul, torch.min: self._max_fn,
                     torch.topk: self._topk, torch.sort: self._sort}
        methods = {"amax": self._amax_fn, "max": self._max_fn, "norm": self._vector_norm,
                   "min": self._max_fn, "topk": self._topk, "sort": self._sort}
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
        """torch.addcmul(b, w, x), b + w * x with a learned shift b and scale w of one shape
        broadcast over x (ConvNeXt-V2's global response norm): one addcmul op, PyTorch's
        single kernel."""
        a = self.bind(_sig_addcmul, node)
        b, t1, t2 = (self.value(a[k]) for k in ("input", "tensor1", "tensor2"))
        w, x = (t1, a["tensor2"]) if isinstance(t1, _Param) else (t2, a["tensor1"])
        if a["value"] != 1 or not (isinstance(b, _Param) and isinstance(w, _Param)
                                   and b.is_parameter and w.is_parameter
                                   and b.shape == w.shape):
            raise self.unsupported("computes b + value * t1 * t2 other than with a learned "
                                   "shift b and scale t1 or t2 of one shape (value 1); only "
                                   "those are supported")
        x = self.tensor(x)
        shape = self.b.spec(x).shape
        if not (len(w.shape) < len(shape) or w.shape[0] == 1) or not all(
                p in (1, s) for p, s in zip(reversed(w.shape), reversed(shape), strict=False)):
            raise self.unsupported(f"scales and shifts {shape} by parameters of {w.shape}; "
                                   "only parameters that broadcast over the tensor without "
                                   "the batch are supported")
        out = self._op("addcmul", [x], shape, self.name("addcmul"),
                       {"param_shape": w.shape}, params=2 * math.prod(w.shape))
        self._claim([w, b], out)
        return out

    def _amax_fn(self, node):
        a = self.bind(_sig_max, node)
        return self._amax(node, a["dim"], a["keepdim"])

    def _max_fn(self, node):
        """torch.max / torch.min(x, dim): (the values, their positions, which no op of the
        graph reads: an op reading them is refused); of everything or of two tensors, refused."""
        a = self.bind(_sig_max, node)
        which = "min" if node.target in (self.torch.min, "min") else "max"
        if a["dim"] is None or not isinstance(a["dim"], int):
            raise self.unsupported(f"takes the {which}imum of everything or of two tensors; "
                                   f"only torch.{which}(x, dim) over a dimension after the "
                                   "batch is supported")
        return self.select_values(a["input"], a["dim"], which, bool(a["keepdim"]))

    def _topk(self, node):
        a = self.bind(_sig_topk, node)
        return self.select_values(a["input"], a["dim"], "topk", True, k=int(a["k"]),
                                  largest=bool(a["largest"]))

    def _sort(self, node):
        a = self.bind(_sig_sort, node)
        return self.select_values(a["input"], a["dim"], "sort", True,
                                  descending=bool(a["descending"]))

    def select_values(self, arg, dim: int, which: str, keepdim: bool, **attrs):
        """One select_values op over dimension `dim` after the batch (moved last where it is
        not, a view, and back), its output the values; the positions it writes beside them
        are a pending value no op may read (workloads/kinds/selection_fused.py)."""
        x = self.tensor(arg)
        rank = len(self.b.spec(x).shape)
        d = int(dim) % rank
        if d == 0:
            raise self.unsupported(f"takes {which} over dimension {dim} of "
                                   f"{self.b.spec(x).shape}, the batch; only a dimension "
                                   "after the batch is supported")
        order = (*(i for i in range(rank) if i != d), d)
        moved = x if d == rank - 1 else self._permuted(x, order, "permute")
        shape = self.b.spec(moved).shape
        k = attrs.pop("k", 1 if which in ("max", "min") else shape[-1])
        out_shape = (*shape[:-1], k) if keepdim else shape[:-1]
        out = self._op("select_values", [moved], out_shape, self.name(which),
                       dict(op=which, k=k, keepdim=keepdim, **attrs))
        if keepdim and moved != x:
            out = self._permuted(out, tuple(order.index(i) for i in range(rank)), "permute")
        return (out, _Pending("positions", out))

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
