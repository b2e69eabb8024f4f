"""How torch_import lowers a batch folded with other dimensions: windows, heads or patches put
into the batch by a reshape, (N, ...) to (N * f, ...), computed on, and unfolded by another
reshape (timm's and Hugging Face's Swin windows, MobileViT's patches, BLOOM's heads).

The graph keeps the batch first, which pipelines split into micro-batches and data parallelism
splits across devices: a tensor PyTorch holds as (N * f, d1, ..., dk) is (N, f, d1, ..., dk)
here, the same values in the same order (a reshape of a contiguous tensor, or the copy PyTorch
makes where it is not). An op reading a folded tensor is lowered with its dimensions counted
as here: dimension 0 of PyTorch's is dimensions 0 and 1 here and dimension p > 0 is p + 1
(negative ones are the same); its output is folded where PyTorch's first dimension is N * f,
and unfolded where a reshape gives the batch back. Only ops that leave PyTorch's dimension 0
alone read folded tensors (products, attention, softmax and norms over trailing dimensions,
arithmetic, views and permutes that keep it first or move it as qkv.permute(2, 0, 3, 1, 4)
does before unbind(0)); any other is refused, naming the fold. Every op's shape is checked
against PyTorch's, unfolded, as for any op.

`FoldLowering` is a mixin of `torch_import._Lowering`; torch is never imported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .torch_state import LoweringState

# what reads a folded tensor: Tensor methods and functions by name (their dimension arguments
# are translated by _DIM_ARGS), and nn modules by class name
_READS_FOLDED = {
    "view", "reshape", "view_as", "reshape_as", "contiguous", "transpose", "swapaxes",
    "swapdims", "permute", "softmax", "unbind", "getitem", "size", "dim", "getattr", "add",
    "iadd", "sub", "mul", "imul", "truediv", "matmul", "bmm", "baddbmm", "linear", "layer_norm",
    "dropout", "gelu", "relu", "silu", "sigmoid", "tanh", "scaled_dot_product_attention",
    "to", "float", "type_as", "add_", "mul_", "chunk", "split", "masked_fill", "flatten",
}
_MODULES_READING_FOLDED = {"Linear", "LayerNorm", "Dropout", "Identity", "GELU", "ReLU",
                           "SiLU", "Sigmoid", "Tanh", "Softmax", "Hardswish",
                           # batch-first recurrent layers run over the folded rows
                           # (Sequencer's LSTMs over (N * H, W, C))
                           "LSTM", "GRU", "RNN"}
# (positions, keywords) of the dimension arguments of a call, the tensor first
_DIM_ARGS = {
    "transpose": ((1, 2), ("dim0", "dim1")), "swapaxes": ((1, 2), ("axis0", "axis1")),
    "swapdims": ((1, 2), ("dim0", "dim1")), "softmax": ((1,), ("dim",)),
    "unbind": ((1,), ("dim",)), "chunk": ((2,), ("dim",)), "split": ((2,), ("dim",)),
    "flatten": ((1, 2), ("start_dim", "end_dim")),
}
# the dimension a call takes when none is given
_DIM_DEFAULTS = {"unbind": {"dim": 0}, "chunk": {"dim": 0}, "split": {"dim": 0},
                 "flatten": {"start_dim": 0}}


@dataclass
class _Unfolded:
    """An fx node seen with its dimensions counted as in the graph: the same target and
    inputs, dimension arguments translated, its traced shape unfolded."""
    op: str
    target: object
    name: str
    args: tuple
    kwargs: dict
    meta: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)
    unfolded: bool = True


class FoldLowering(LoweringState):
    def fold_value(self, node):
        """The value of a node that reads a folded tensor, or that folds the batch with a
        reshape; None for the other nodes (lowered as they are)."""
        if getattr(node, "unfolded", False) or node.op not in ("call_function", "call_method",
                                                              "call_module"):
            return None
        folded = self.folded
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        if not any(i in folded for i in inputs):
            return self._folding(node)
        what = self._batch_flatten(node) or self._call_name(node)
        if what not in (_MODULES_READING_FOLDED if node.op == "call_module"
                        else _READS_FOLDED):
            raise self.unsupported(f"reads a tensor whose batch PyTorch folded with other "
                                   f"dimensions ({self._folded_input_shape(inputs)}); only "
                                   "products, attention, softmax, norms and activations over "
                                   "trailing dimensions, arithmetic and views are supported "
                                   "on it")
        if what in ("view", "reshape") and isinstance(self.value(node.args[0]), str):
            return self._refolded(node, what)
        return self.lower(self._unfolded(node, what))

    def _refolded(self, node, what: str):
        """A reshape seen as here: a view of the same values, or the copy PyTorch makes, then
        the view (never one of the patterns a reshape of an unfolded tensor may start, such
        as a channel shuffle's)."""
        return self._same_values(self.tensor(node.args[0]), self._unfolded(node, what),
                                 "reshape")

    def _folding(self, node):
        """A reshape of a tensor with the batch first to (N * f, ...): the same values seen
        as (N, f, ...); None where the reshape keeps the batch or makes rows (N * S, D),
        which the rows idiom lowers."""
        what = self._batch_flatten(node) or self._call_name(node)
        if node.op == "call_module" or what not in ("view", "reshape") or \
                not isinstance(self.value(node.args[0]), str):
            return None
        shape, out = self.b.spec(self.value(node.args[0])).shape, self.traced_shape(node)
        n = self.b.batch
        if out is None or len(out) < 2 or len(shape) < 2 or shape[0] != n or out[0] == n or \
                out[0] % n or math.prod(out) != math.prod(shape) or \
                (len(out) == 2 and out == (math.prod(shape[:-1]), shape[-1])):
            return None
        return self._refolded(node, what)

    def _batch_flatten(self, node) -> str | None:
        """"reshape" for a flatten from dimension 0 (Hiera's unroll, `x.flatten(0, 2)` of
        (N, sy, sx, ...), folding the strides into the batch), which is that reshape; None
        for any other node."""
        if node.op == "call_module" or self._call_name(node) != "flatten":
            return None
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        start = getattr(self.value(start), "value", self.value(start))
        return "reshape" if start == 0 else None

    def folded_shape_matches(self, node, got, expected) -> bool:
        """Whether graph shape `got` (N, f, ...) holds PyTorch's folded `expected`
        (N * f, ...), the same values in the same order; the node is then folded."""
        if expected is None or not expected or expected[0] == self.b.batch or \
                tuple(got) != self._unfold_shape(expected):
            return False
        self.folded.add(node)
        return True

    def _unfold_shape(self, shape):
        n = self.b.batch
        if not shape or shape[0] == n or shape[0] % n:
            return tuple(shape)
        return (n, shape[0] // n, *shape[1:])

    def _folded_input_shape(self, inputs) -> str:
        for i in inputs:
            if i in self.folded:
                return f"{self.traced_shape(i)} is {self._unfold_shape(self.traced_shape(i))}"
        return ""

    def _call_name(self, node) -> str:
        if node.op == "call_module":
            return type(self.modules[node.target]).__name__
        return node.target if isinstance(node.target, str) else \
            getattr(node.target, "__name__", "")

    def _unfolded(self, node, what: str) -> _Unfolded:
        meta = dict(node.meta)
        tm = meta.get("tensor_meta")
        if isinstance(tm, self.TensorMetadata):
            meta["tensor_meta"] = tm._replace(shape=self._unfold_shape(tuple(tm.shape)))
        elif isinstance(tm, (tuple, list)):
            meta["tensor_meta"] = type(tm)(
                m._replace(shape=self._unfold_shape(tuple(m.shape)))
                if isinstance(m, self.TensorMetadata) else m for m in tm)
        args, kwargs = self._translated_dims(node, what)
        return _Unfolded(node.op, node.target, node.name, args, kwargs, meta, node.users)

    def _dim(self, d, folded: bool):
        """PyTorch's dimension d of a folded tensor counted here."""
        d = self.value(d)
        d = getattr(d, "value", d)
        if not isinstance(d, int) or not folded or d < 0:
            return d
        if d == 0:
            raise self.unsupported("works along the dimension PyTorch folded the batch into; "
                                   "only the dimensions after it are supported")
        return d + 1

    def module_dim(self, node, dim: int) -> int:
        """A module's dimension attribute (nn.Softmax's dim) counted as in the graph."""
        return self._dim(dim, bool(node.args) and node.args[0] in self.folded)

    def _translated_dims(self, node, what: str):
        args, kwargs = list(node.args), dict(node.kwargs)
        folded = bool(args) and args[0] in self.folded
        if what == "permute" and folded:
            dims = args[1:] if len(args) > 1 else [kwargs.pop("dims")]
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = list(dims[0])
            rank = len(self.known_shape(args[0]))
            out: list[int] = []
            for d in (int(getattr(self.value(d), "value", self.value(d))) % rank
                      for d in dims):
                out += [0, 1] if d == 0 else [d + 1]
            return (args[0], *out), kwargs
        if what == "getitem" and folded:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if index and index[0] == slice(None):
                return (args[0], (slice(None), *index)), kwargs
            if index and index[0] is Ellipsis:
                return tuple(args), kwargs
            raise self.unsupported(f"indexes the dimension PyTorch folded the batch into "
                                   f"with {index!r}; only the dimensions after it are "
                                   "supported")
        if what not in _DIM_ARGS or not folded:
            return tuple(args), kwargs
        positions, keywords = _DIM_ARGS[what]
        for key, default in _DIM_DEFAULTS.get(what, {}).items():
            slot = positions[keywords.index(key)]
            if len(args) <= slot and key not in kwargs:
                kwargs[key] = default
        for pos, key in zip(positions, keywords, strict=True):
            if pos < len(args):
                args[pos] = self._dim(args[pos], folded)
            elif key in kwargs:
                kwargs[key] = self._dim(kwargs[key], folded)
        return tuple(args), kwargs
