"""How torch_import lowers the idioms of models people bring from Hugging Face transformers and
timm, each onto the IR's kinds:

- rows: a sequence (N, S, D) viewed as (N * S, D) rows, an `addmm(bias, rows, W)` with a
  parameter W of shape [in, out] (GPT-2's Conv1D: the same linear layer, its weight stored
  transposed) and the view back to (N, S, out); the batch stays first in the graph;
- heads moved before the batch and taken one by one: `qkv.reshape(B, N, 3, h, d)
  .permute(2, 0, 3, 1, 4)` then `q, k, v = qkv.unbind(0)` (or `qkv[0]`): each piece is a
  position of the source's dimension (a view) and a permute of the rest (a view), as PyTorch
  returns them; `unbind` of any dimension after the batch likewise;
- `F.batch_norm` on the module's own running statistics and affine parameters (timm's
  BatchNormAct2d): a batch norm;
- a parameter reshaped before it scales a tensor (timm's layer scale `gamma.reshape(1, -1, 1,
  1)`): the same parameter with that shape;
- the mean over dimensions after the batch that are not the trailing ones (MLP-Mixer's mean
  over tokens): a permute (a view) that puts them last, then the mean;
- token ids seen through a view, a cast or a device move (`input_ids.view(-1, seq)`): the ids;
- a product with a 2-D parameter, `x @ W` (W stored (in, out)) or `W @ cols` of (N, K, L)
  columns (a convolution written as unfold and a product): the linear layer it computes.

The tables, masks and pieces added to or cut from tensors are torch_import_tables'.

`IdiomLowering` is a mixin of `torch_import._Lowering`; `idiom_value(node)` answers a node it
recognises, or None. torch is never imported here.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from .torch_import_tables import _BiasTable, _Empty, _Transposed
from .torch_layers import _Param
from .torch_operands import _Aux
from .torch_state import LoweringState
from .torch_values import _Pending
from .torch_views import _Stacked


@dataclass(frozen=True)
class _Moved:
    """Builder tensor `source` permuted by `dims`, which moves the batch from first."""
    source: str
    dims: tuple[int, ...]


def _sig_addmm(input, mat1, mat2, beta=1, alpha=1): ...
def _sig_batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
                    momentum=0.1, eps=1e-5): ...
def _sig_unbind(input, dim=0): ...
def _sig_mean(input, dim=None, keepdim=False, dtype=None): ...


_RESHAPES = ("view", "reshape", "reshape_as", "view_as")
# methods that return the ids themselves for integer token ids of the same shape
_ID_PASSTHROUGH = ("view", "reshape", "to", "long", "int", "contiguous")
# methods that return their input where the dtype stays (a device move, a cast to its own)
_SAME_DTYPE = ("to", "type_as", "float", "contiguous")


class IdiomLowering(LoweringState):
    def idiom_handlers(self, torch) -> tuple[dict, dict]:
        """(functions, Tensor methods) lowered here."""
        F = torch.nn.functional
        functions = {torch.addmm: self._addmm, F.batch_norm: self._batch_norm_fn,
                     torch.unbind: self._unbind, torch.baddbmm: self._baddbmm}
        methods = {"unbind": self._unbind, "baddbmm": self._baddbmm,
                   "type": self._same_dtype,    # GPT-2's weights.type(value.dtype)
                   "reshape_as": self._reshape, "view_as": self._reshape}
        return functions, methods

    def idiom_value(self, node):
        """The value of a node lowered as one of this module's idioms, or None."""
        if node.op == "call_module" and node.args and node.args[0] in self.rows_nodes and \
                type(self.modules[node.target]) is self.torch.nn.BatchNorm1d:
            return self._batch_norm_rows(node, self.modules[node.target])
        if node.op not in ("call_function", "call_method") or not node.args:
            return None
        src = self.value(node.args[0]) if isinstance(node.args[0], self.torch.fx.Node) else None
        is_reshape = (node.op == "call_method" and node.target in _RESHAPES) or \
            node.target is self.torch.reshape
        is_flatten = (node.op == "call_method" and node.target == "flatten") or \
            node.target is self.torch.flatten
        out_shape = self.traced_shape(node)
        if isinstance(src, _Param) and is_reshape and out_shape is not None:
            return _Param(src.target, out_shape, src.is_parameter)
        if isinstance(src, _BiasTable) and is_reshape and out_shape is not None:
            return _BiasTable(src.param, out_shape)
        if isinstance(src, str) and is_reshape and node.args[0] in self.rows_nodes:
            return self._rows_back(src, out_shape)
        if isinstance(src, str) and (is_reshape or is_flatten) and out_shape is not None:
            if self._is_ids(src) and out_shape == self.b.spec(src).shape:
                return src
            shape = self.b.spec(src).shape
            if len(shape) >= 3 and out_shape == (math.prod(shape[:-1]), shape[-1]):
                self.rows_nodes.add(node)   # the same values, the batch kept first
                return src
        if isinstance(src, str) and node.op == "call_method" and \
                node.target in _ID_PASSTHROUGH and self._is_ids(src):
            return src
        if (derived := self._ids_derived(node)) is not None:
            return derived
        if node.op == "call_method" and node.target in _SAME_DTYPE and src is not None \
                and not isinstance(src, str) and self._keeps_dtype(node):
            return src   # a table of rows or constants moved to its own device or dtype
        if node.target in ("permute", self.torch.permute) and isinstance(src, str):
            return self._moved(node, src)
        if isinstance(src, _Param) and src.is_parameter and len(src.shape) == 2 and \
                node.target is self._getitem_fn():
            index = self.resolve_index(node.args[1])
            if isinstance(index, tuple) and len(index) == 2 and index[0] == slice(None) and \
                    isinstance(index[1], (_Param, _Aux)) and \
                    not getattr(index[1], "is_parameter", False) and out_shape is not None:
                return _BiasTable(src, out_shape)
        if node.target is self._getitem_fn() and out_shape is not None and \
                0 in out_shape and isinstance(src, str):
            return _Empty(out_shape)
        if node.target in (self.torch.cat, self.torch.concat):
            return self._cat_without_empty(node)
        if isinstance(src, _Param) and src.is_parameter and len(src.shape) == 2 and (
                node.target is getattr and node.args[1:] in (("T",), ("mT",))
                or node.target in ("t", self.torch.t) and len(node.args) == 1):
            return _Transposed(src)   # `self.weight.T`, `self.weight.t()`: a view
        if node.target in (operator.matmul, self.torch.matmul, "matmul") and \
                len(node.args) == 2 and isinstance(self.value(node.args[1]), _Transposed):
            w = self.value(node.args[1]).param
            out = self.b.linear(self.tensor(node.args[0]), w.shape[0], bias=False,
                                name=self.name("linear"))
            self._claim([w], out)
            return out
        if node.target in (operator.matmul, self.torch.matmul, "matmul") and \
                len(node.args) == 2 and not node.kwargs and \
                (out := self._matmul_with_weight(src, self.value(node.args[1]))) is not None:
            return out
        if isinstance(src, _Moved) and node.target is self._getitem_fn():
            index = self.resolve_index(node.args[1])
            if isinstance(index, int):
                return self._select(src.source, src.dims, index)
        if node.target in ("mean", self.torch.mean, "sum", self.torch.sum) and \
                (isinstance(src, str) or isinstance(src, _Pending) and
                 src.kind == "shuffle_split"):   # ResNeSt's sum over its radix splits
            return self._mean_inner(node, src if isinstance(src, str) else
                                    lambda: self.tensor(node.args[0]))
        if node.target in ("mean", self.torch.mean) and isinstance(src, _Stacked):
            return self.mean_of_stacked(node, src)
        if node.target is self.torch.nn.functional.scaled_dot_product_attention:
            return self._sdpa_gqa(node)
        if node.target in (operator.sub, self.torch.sub, "sub") and len(node.args) == 2 and \
                not node.kwargs:
            return self._difference(src, self.value(node.args[1]))
        if node.target in (operator.add, self.torch.add, "add") and len(node.args) == 2 and \
                not node.kwargs:
            return self._table_added(self.value(node.args[0]), self.value(node.args[1]))
        return None


    def _keeps_dtype(self, node) -> bool:
        source, out = (getattr(n.meta.get("tensor_meta"), "dtype", None)
                       for n in (node.args[0], node))
        return source is not None and source == out

    def _getitem_fn(self):
        return operator.getitem

    def _is_ids(self, x: str) -> bool:
        return self.example_is_integer and x == self.input_name

    # -- rows ------------------------------------------------------------------------------
    def rows_shape_matches(self, node, got, expected) -> bool:
        """Whether builder shape `got` (N, *lead, D) stands for PyTorch's rows `expected`
        (N * prod(lead), D) at a node that reads rows (the same values, the batch first)."""
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        return (node in self.rows_nodes or any(i in self.rows_nodes for i in inputs)) and \
            expected is not None and len(expected) == 2 and len(got) >= 3 and \
            got[-1] == expected[-1] and math.prod(got[:-1]) == expected[0]

    def _rows_back(self, x: str, out_shape):
        shape = self.b.spec(x).shape
        if out_shape is None or out_shape[0] != shape[0] or \
                math.prod(out_shape) != math.prod(shape):
            raise self.unsupported(f"reshapes rows of {shape} to {out_shape}; only back to a "
                                   "shape with the batch first is supported")
        if tuple(out_shape) == shape:
            return x
        return self.b.reshape(x, out_shape, name=self.name("reshape"))

    def _addmm(self, node):
        a = self.bind(_sig_addmm, node)
        w, bias = self.value(a["mat2"]), self.value(a["input"])
        if not isinstance(w, _Param) or not isinstance(bias, _Param) or \
                a["beta"] != 1 or a["alpha"] != 1:
            raise self.unsupported("is supported only as a layer: addmm(bias, x, weight) with "
                                   "the model's own [in, out] weight and bias")
        out = self.b.linear(self.tensor(a["mat1"]), w.shape[1], bias=True,
                            name=self.name("linear"))
        self._claim([w, bias], out)
        return out

    # -- heads moved before the batch ------------------------------------------------------
    def _moved(self, node, src: str):
        dims = node.args[1:] if len(node.args) > 1 else (node.kwargs.get("dims"),)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = dims[0]
        rank = len(self.b.spec(src).shape)
        dims = tuple(int(d) % rank for d in dims)
        if dims[0] == 0 or 0 not in dims:
            return None
        return _Moved(src, dims)

    def _select(self, x: str, dims: tuple[int, ...], index: int):
        """Position `index` of x's dimension dims[0], then x permuted by the rest of dims."""
        picked = dims[0]
        size = self.b.spec(x).shape[picked]
        index %= size
        rest = tuple(d - (d > picked) for d in dims[1:])
        if rest[0] != 0:
            raise self.unsupported(f"takes a piece of a permute by {dims} that leaves the "
                                   "batch elsewhere than first; only pieces with the batch "
                                   "first are supported")
        piece = self.b.slice(x, index, index + 1, dim=picked, name=self.name("select"))
        shape = self.b.spec(piece).shape
        piece = self.b.reshape(piece, shape[:picked] + shape[picked + 1:],
                               name=self.name("select"))
        return self._permuted(piece, rest, "permute")

    def _unbind(self, node):
        a = self.bind(_sig_unbind, node)
        src = self.value(a["input"])
        if isinstance(src, _Moved) and a["dim"] == 0:
            size = self.b.spec(src.source).shape[src.dims[0]]
            return tuple(self._select(src.source, src.dims, i) for i in range(size))
        x = self.tensor(a["input"])
        rank = len(self.b.spec(x).shape)
        dim = a["dim"] % rank
        if dim == 0:
            raise self.unsupported("unbinds the batch; only dimensions after it are supported")
        dims = (dim, *(d for d in range(rank) if d != dim))
        return tuple(self._select(x, dims, i) for i in range(self.b.spec(x).shape[dim]))

    # -- layers ----------------------------------------------------------------------------
    def _batch_norm_fn(self, node):
        a = self.bind(_sig_batch_norm, node)
        w, bias = self._param_arg(self.value(a["weight"]), "weight"), \
            self._param_arg(self.value(a["bias"]), "bias")
        if (w is None) != (bias is None):
            raise self.unsupported("has a weight without a bias or a bias without a weight")
        out = self.b.batchnorm(self.tensor(a["input"]), name=self.name("batchnorm"),
                               affine=w is not None)
        self._claim([w, bias], out)
        return out


    def _batch_norm_rows(self, node, m):
        """BatchNorm1d of (N * S, D) rows (LeViT's linear-then-norm): the features are the
        last dimension of the (N, S, D) tensor here, so the norm runs on it permuted to
        (N, D, S), a view, and permuted back: the same statistics over the same values."""
        x = self.tensor(node.args[0])
        if len(self.b.spec(x).shape) != 3:
            return None
        moved = self._permuted(x, (0, 2, 1), "permute")
        out = self.b.batchnorm(moved, name=self.name(""), affine=m.affine)
        if self.b.graph.op(out).params != sum(p.numel() for p in m.parameters()):
            raise self.unsupported("normalises rows with parameters of another shape than "
                                   "its features")
        return self._permuted(out, (0, 2, 1), "permute")

    def _matmul_with_weight(self, a, b):
        """x @ W with a 2-D parameter W stored (in, out): the linear layer it computes; W @ x
        with x of (N, K, L) (a convolution written as unfold and a product): the linear layer
        of x seen as (N, L, K), permuted there and back (views). None for other products."""
        if isinstance(a, str) and isinstance(b, _Param) and b.is_parameter and \
                len(b.shape) == 2 and self.b.spec(a).shape[-1] == b.shape[0]:
            out = self.b.linear(a, b.shape[1], bias=False, name=self.name("linear"))
            self._claim([b], out)
            return out
        if isinstance(b, str) and isinstance(a, _Param) and a.is_parameter and \
                len(a.shape) == 2 and len(self.b.spec(b).shape) == 3 and \
                self.b.spec(b).shape[1] == a.shape[1]:
            rows = self._permuted(b, (0, 2, 1), "permute")
            out = self.b.linear(rows, a.shape[0], bias=False, name=self.name("linear"))
            self._claim([a], out)
            return self._permuted(out, (0, 2, 1), "permute")
        return self._matmul_with_constant(a, b)

    def _matmul_with_constant(self, a, b):
        """x @ C with C a 2-D buffer or tensor of constants (fixed text features): a
        constant_matmul; C @ x with x of (N, K, L): the same of x seen as (N, L, K), permuted
        there and back (views). None for other products."""
        def constant(v):
            return (isinstance(v, _Aux) or isinstance(v, _Param) and not v.is_parameter) \
                and len(v.shape) == 2
        if isinstance(a, str) and constant(b) and self.b.spec(a).shape[-1] == b.shape[0]:
            return self.b.constant_matmul(a, b.shape[1], name=self.name("constant_matmul"))
        if isinstance(b, str) and constant(a) and len(self.b.spec(b).shape) == 3 and \
                self.b.spec(b).shape[1] == a.shape[1]:
            rows = self._permuted(b, (0, 2, 1), "permute")
            out = self.b.constant_matmul(rows, a.shape[0], name=self.name("constant_matmul"))
            return self._permuted(out, (0, 2, 1), "permute")
        return None

    def _mean_inner(self, node, x: str | Callable[[], str]):
        """The mean (or sum) over dimensions after the batch that are not all trailing: a
        permute that puts them last (a view), then the reduction; with keepdim (the channel
        statistics of ConvNeXt's channels-first LayerNorm, `x.mean(1, keepdim=True)`), the
        kept ones of size 1 permuted back into place, a view. None where the ordinary
        lowering applies. `x` is the tensor, or what makes it (a pending view's op) once the
        reduction is known to apply."""
        a = self.bind(_sig_mean, node)
        rank = len(self.traced_shape(node.args[0]) or ()) if callable(x) else \
            len(self.b.spec(x).shape)
        dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else (a["dim"],)
        if a["dim"] is None or a["dtype"] is not None:
            return None
        reduced = sorted({int(d) % rank for d in dims})
        if 0 in reduced or reduced == list(range(rank - len(reduced), rank)) or \
                (rank == 4 and reduced == [2, 3]):
            return None
        return self.reduce_inner(x() if callable(x) else x, self.reduction_kind(node), reduced,
                                 bool(a["keepdim"]))

