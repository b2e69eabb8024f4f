"""How torch_import lowers what picks, repeats and selects values by constants:

- rows picked by a constant index, `x[:, [-1], :]`, `x[:, perm]`, `x.index_select(d, buffer)`
  and `torch.gather` by a buffer index that is the same along the other dimensions (the
  rows of an expanded buffer): one `index_select` copy, as advanced indexing copies (a
  strided slice, `x[..., ::2]`, is a view: workloads/torch_strided.py);
- `k.repeat_interleave(r, dim=1)` of (N, KV, S, D) heads: the `repeat_heads` copy; along the
  batch, `q.repeat_interleave(r, dim=0)` (GCViT's global query given to each window of its
  image), the same copy of the tensor seen as one head, its output the batch folded with r;
- `torch.where(mask, x, c)` with a mask of buffers and constants and c a constant or a
  tensor of constants (`torch.full_like(x, c)`): a mask fill, as masks of constants are
  costed; `full_like`, `zeros_like` and `ones_like` are constants (no op).

`SelectionLowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

import math

from .torch_layers import _Param
from .torch_operands import _Aux
from .torch_state import LoweringState
from .torch_values import _Const


def _sig_index_select(input, dim, index): ...
def _sig_gather(input, dim, index, *, sparse_grad=False): ...
def _sig_repeat_interleave(input, repeats, dim=None, *, output_size=None): ...
def _sig_where(condition, input, other): ...


class SelectionLowering(LoweringState):
    def selection_handlers(self, torch) -> tuple[dict, dict]:
        """(functions, Tensor methods) lowered here."""
        functions = {
            torch.index_select: self._index_select, torch.gather: self._gather,
            torch.repeat_interleave: self._repeat_interleave, torch.where: self._where,
            # a tensor of x's shape whose values do not depend on x's: a constant
            torch.full_like: self._constant_like, torch.zeros_like: self._constant_like,
            torch.ones_like: self._constant_like,
        }
        methods = {"index_select": self._index_select, "gather": self._gather,
                   "repeat_interleave": self._repeat_interleave}
        return functions, methods

    def index_select(self, x: str, dim: int, index) -> str:
        """The rows `index` (ints, negative ones counted from the end) of dimension `dim`
        after the batch, copied as PyTorch's advanced indexing copies them."""
        size = self.b.spec(x).shape[dim]
        if dim == 0 or not all(isinstance(i, int) and -size <= i < size for i in index):
            raise self.unsupported(f"picks rows {index!r} of dimension {dim} (size {size}); "
                                   "only constant rows of a dimension after the batch are "
                                   "supported")
        rows = tuple(int(i) % size for i in index)
        shape = (*self.b.spec(x).shape[:dim], len(rows), *self.b.spec(x).shape[dim + 1:])
        return self._op("index_select", [x], shape, self.name("index_select"),
                        {"dim": dim, "index": rows})

    def _index_select(self, node):
        """x.index_select(dim, index) with an index held in a buffer or made from constants:
        its values as the traced run has them."""
        a = self.bind(_sig_index_select, node)
        x, rank = self.tensor(a["input"]), len(self.b.spec(self.tensor(a["input"])).shape)
        values = self.constant_values(a["index"])
        if values is None or len(values.shape) != 1:
            raise self.unsupported("picks rows by a computed index; only an index held in a "
                                   "buffer or made from constants is supported")
        return self.index_select(x, int(a["dim"]) % rank, [int(i) for i in values.tolist()])

    def _gather(self, node):
        """torch.gather(x, dim, index) with a constant index that is the same along every
        other dimension (a buffer of rows expanded over x): x.index_select(dim, rows)."""
        a = self.bind(_sig_gather, node)
        x = self.tensor(a["input"])
        shape = self.b.spec(x).shape
        dim = int(a["dim"]) % len(shape)
        values = self.constant_values(a["index"])
        if values is None or values.dim() != len(shape) or any(
                values.shape[d] != shape[d] for d in range(len(shape)) if d != dim):
            raise self.unsupported("gathers by a computed index or one smaller than the input; "
                                   "only a constant index of the input's shape is supported")
        rows = values.movedim(dim, 0).reshape(values.shape[dim], -1)
        if not bool((rows == rows[:, :1]).all()):
            per_sample = values.reshape(*values.shape[:2], -1)
            if dim == 1 and len(shape) >= 3 and bool((per_sample == per_sample[..., :1]).all()):
                # rows of each sample's own (a per-sample shuffle's first K): the same copy
                # whichever rows, so its cost needs only their count
                return self.b.take_per_sample(x, name=self.name("take_per_sample"),
                                              rows=int(values.shape[1]))
            raise self.unsupported("gathers other rows at other positions; only an index "
                                   "that picks the same rows everywhere, or whole rows of "
                                   "dimension 1 per sample, is supported")
        return self.index_select(x, dim, [int(i) for i in rows[:, 0].tolist()])

    def constant_values(self, arg):
        """The tensor a buffer (or a tensor made from constants while tracing) holds, or None
        where it is computed from the input or its values are unknown (the meta device)."""
        if not isinstance(arg, self.torch.fx.Node):
            return None
        if arg.op == "get_attr":
            value = self.gm
            for part in arg.target.split("."):
                value = getattr(value, part)
            if isinstance(value, self.torch.Tensor) and value.is_meta:   # its CPU copy's
                value = arg.meta.get("dnnsim_shadow", value)
        elif isinstance(self.value(arg), _Aux):
            value = arg.meta.get("dnnsim_index")
        else:
            return None
        if not isinstance(value, self.torch.Tensor) or value.is_meta or \
                isinstance(value, self.torch.nn.Parameter):
            return None
        return value.detach()

    def _repeat_interleave(self, node):
        """k.repeat_interleave(r, dim=1) of (N, KV, S, D) heads (grouped-query attention
        written with it rather than repeat_kv): the same repeat_heads copy."""
        a = self.bind(_sig_repeat_interleave, node)
        x, repeats = self.tensor(a["input"]), self.value(a["repeats"])
        repeats = repeats.value if isinstance(repeats, _Const) else repeats
        shape = self.b.spec(x).shape
        rank = len(shape)
        if repeats == 1 and a["dim"] is not None:   # the values, copied as PyTorch does
            return self._copy(x, "repeat_interleave")
        if isinstance(repeats, int) and a["dim"] is not None and int(a["dim"]) % rank == 0 \
                and rank >= 2 and repeats > 1:
            # each sample's tensor repeated over a dimension folded into the batch (GCViT's
            # global query, one per window of its image): PyTorch's (N * r, ...) is (N, r, ...)
            # here, the same values; one repeat_heads copy of the tensor seen as (N, 1, ., .)
            seen = self.b.reshape(x, (shape[0], 1, math.prod(shape[1:-1]), shape[-1]),
                                  name=self.name("as_one_head"))
            copied = self.b.repeat_heads(seen, repeats, name=self.name("repeat_heads"))
            return self.b.reshape(copied, (shape[0], repeats, *shape[1:]),
                                  name=self.name("folded"))
        if not isinstance(repeats, int) or a["dim"] is None or rank != 4 or \
                int(a["dim"]) % rank != 1:
            raise self.unsupported(f"repeats {repeats!r} times along dim {a['dim']!r} of a "
                                   f"rank-{rank} tensor; only a constant count along dim 1 of "
                                   "(N, heads, S, D), or along the batch (folded into it), is "
                                   "supported")
        return self.b.repeat_heads(x, repeats, name=self.name("repeat_heads"))

    def _where(self, node):
        """torch.where(mask, x, c) or torch.where(mask, c, x) with a mask of buffers and
        constants and c a constant (or a tensor of constants, torch.full_like(x, c)): x
        filled with c where it is not kept, costed as masked_fill is."""
        a = self.bind(_sig_where, node)
        mask = self.value(a["condition"])
        branches = [self.value(a[k]) for k in ("input", "other")]
        tensors = [b for b in branches if isinstance(b, str)]
        constant = [b for b in branches if not isinstance(b, str)]
        if not (isinstance(mask, _Aux) or isinstance(mask, _Param) and not mask.is_parameter):
            raise self.unsupported("selects by a condition computed from the input; only a "
                                   "condition of buffers and constants is supported")
        other = a["other"] if isinstance(branches[0], str) else a["input"]
        fill = self._fill_of(other) if constant and isinstance(constant[0], _Aux) else \
            self._constant(other)
        if len(tensors) != 1 or fill is None or \
                self.traced_shape(node) != self.b.spec(tensors[0]).shape:
            raise self.unsupported("selects between two computed tensors or broadcasts one; "
                                   "only a tensor and a constant of its shape are supported")
        return self._masked_fill(tensors[0], fill, self.name("where"))

    def _fill_of(self, node) -> float | None:
        """The value a torch.full_like / zeros_like / ones_like node fills with, else None."""
        t = getattr(node, "target", None)
        if t is self.torch.full_like and len(node.args) > 1:
            return self._constant(node.args[1])
        return {self.torch.zeros_like: 0.0, self.torch.ones_like: 1.0}.get(t)

    def _constant_like(self, node):
        shape = self.traced_shape(node)
        if shape is None:
            raise self.unsupported("makes a tensor whose shape the traced run does not give")
        return _Aux(shape)
