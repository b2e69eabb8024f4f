"""How torch_import lowers views and copies: chunk, split, indexing, reshapes, flatten,
permute and transpose, contiguous.

`ViewLowering` is a mixin of `torch_import._Lowering`. Whether PyTorch ran a reshape, a flatten
or `contiguous()` as a view or as a copy is read off the traced run (node.meta["dnnsim_alias"]:
the result is a view of its input, or the input itself), so the graph has a copy exactly where
PyTorch made one: a reshape of a permuted tensor copies, a reshape of a contiguous one does not.
Chunks and splits are slices (views). Permutes and transposes are views of the kinds
`permute` (workloads/kinds) where the IR declares it; the channel-shuffle pattern view .
transpose . contiguous . view stays one channel_shuffle op. torch is never imported here.
"""
from __future__ import annotations

import dataclasses
import math

from .graph import WorkloadError
from .torch_state import LoweringState
from .torch_strided import reads_strided
from .torch_values import _Const, _Param, _Pending, _Stacked


def _sig_chunk(input, chunks, dim=0): ...
def _sig_split(tensor, split_size_or_sections, dim=0): ...
def _sig_flatten(input, start_dim=0, end_dim=-1): ...
def _sig_transpose(input, dim0, dim1): ...
def _sig_permute(input, *dims): ...
def _sig_unsqueeze(input, dim): ...
def _sig_squeeze(input, dim=None): ...
def _sig_stack(tensors, dim=0): ...


class ViewLowering(LoweringState):
    def view_handlers(self, torch) -> tuple[dict, dict]:
        """(functions, Tensor methods) lowered here."""
        import operator
        functions = {
            torch.chunk: self._chunk, torch.split: self._split, torch.flatten: self._flatten_fn,
            torch.reshape: self._reshape, torch.transpose: self._transpose,
            torch.swapaxes: self._transpose, torch.swapdims: self._transpose,
            torch.permute: self._permute, torch.unsqueeze: self._unsqueeze,
            torch.squeeze: self._unsqueeze, operator.getitem: self._getitem,
            torch.stack: self._stack,
        }
        methods = {
            "chunk": self._chunk, "split": self._split, "flatten": self._flatten_fn,
            "view": self._reshape, "reshape": self._reshape, "transpose": self._transpose,
            "swapaxes": self._transpose, "swapdims": self._transpose,
            "permute": self._permute, "contiguous": self._contiguous,
            "unsqueeze": self._unsqueeze, "squeeze": self._unsqueeze,
            "repeat": self._repeat_parameter, "t": self._batch_transpose,
        }
        return functions, methods

    # -- pieces ----------------------------------------------------------------------------
    def _pieces(self, node, x, dim, base):
        """The slices (views) of `x` along `dim` with the sizes PyTorch gave each piece."""
        metas = node.meta.get("tensor_meta")
        rank = len(self.b.spec(x).shape)
        dim %= rank
        out, start = [], 0
        for i, m in enumerate(metas):
            size = int(m.shape[dim])
            out.append(self.b.slice(x, start, start + size, dim=dim,
                                    name=self.name(f"{base}{i}")))
            start += size
        return tuple(out)

    def _chunk(self, node):
        a = self.bind(_sig_chunk, node)
        return self._pieces(node, self.tensor(a["input"]), a["dim"], "chunk")

    def _split(self, node):
        a = self.bind(_sig_split, node)
        return self._pieces(node, self.tensor(a["tensor"]), a["dim"], "split")

    def _getitem(self, node):
        src, index = self.value(node.args[0]), self.resolve_index(node.args[1])
        if isinstance(src, (tuple, list)):   # a piece of a chunk or a split
            return src[index]
        if not isinstance(src, str):
            if isinstance(src, _Pending):
                raise self.unsupported("indexes a pending view")
            return _Const(node.meta.get("dnnsim_value"))  # e.g. x.size()[0]
        full = slice(None)
        if (isinstance(index, tuple) and len(index) == 4 and index[0] == full
                and index[1] == full and all(isinstance(s, slice) and s.start in (None, 0)
                                             and s.stop is None for s in index[2:])):
            stride = (index[2].step or 1, index[3].step or 1)
            return _Pending("subsample", src, stride=stride)
        if (isinstance(index, tuple) and len(index) == 4 and index[0] == full
                and index[3] == full and len(self.b.spec(src).shape) == 4
                and all(isinstance(s, slice) and s.step == 2 and (s.start or 0) in (0, 1)
                        and s.stop is None for s in index[1:3])):
            # one pixel of each 2x2 cell of (N, H, W, C), until the four are concatenated
            return _Pending("cell", src, offset=(index[1].start or 0, index[2].start or 0))
        return self._basic_index(node, src, index)

    def resolve_index(self, index):
        """An index with the sizes computed in the forward (x.shape[-1] // 2) replaced by
        their values."""
        if isinstance(index, tuple):
            return tuple(self.resolve_index(i) for i in index)
        if isinstance(index, slice):
            return slice(*(self.resolve_index(v) for v in (index.start, index.stop,
                                                            index.step)))
        v = self.value(index)
        return v.value if isinstance(v, _Const) else v

    def _basic_index(self, node, x, index):
        """x[:, a:b, i, ...], x[..., a:b] and x[:, :, None]: slices of the dimensions after
        the batch, single positions (a slice, then the dimension dropped) and new axes, all
        views, as in PyTorch."""
        index = index if isinstance(index, tuple) else (index,)
        index = tuple(i for i in index if i is not None)   # a new axis: the final view adds it
        shape = self.b.spec(x).shape
        if index.count(Ellipsis) == 1:   # the dimensions it stands for, whole
            at = index.index(Ellipsis)
            index = (*index[:at], *(slice(None),) * (len(shape) - len(index) + 1),
                     *index[at + 1:])
        picked = [d for d, i in enumerate(index) if isinstance(i, list) or (
            isinstance(i, slice) and i.step not in (None, 1))]
        lists = [d for d in picked if isinstance(index[d], list)]
        if picked and 0 not in picked and len(index) <= len(shape) and len(lists) <= 1 and \
                (not lists or len(picked) == 1) and all(
                i == slice(None) for d, i in enumerate(index) if d not in picked):
            # rows picked by a list: a copy, as advanced indexing copies; a strided slice (an
            # interleaved rotary embedding's pairs, x[..., ::2]; LeViT's subsample, x[:, ::2,
            # ::2] of (N, H, W, C)): a view, copied only for a reader that needs contiguous
            # memory (workloads/torch_strided.py)
            viewed = False
            for d in picked:
                if isinstance(index[d], list):
                    x = self.index_select(x, d, index[d])
                else:
                    x, view = self.strided_view(x, d, index[d])
                    viewed = viewed or view
            if viewed and not reads_strided(self.torch, node, self.modules):
                x = self._copy(x, "contiguous")
            return x
        plain = all(isinstance(i, int) or (isinstance(i, slice) and i.step in (None, 1))
                    for i in index)
        if not plain and self._picks_per_sample(node, shape, index):
            return self.b.take_per_sample(x, name=self.name("take_per_sample"))
        if not plain or len(index) > len(shape) or index[0] != slice(None):
            tensors = [i for i in index if not isinstance(i, (int, slice, list))]
            why = ("; index tensors on the batch are supported as x[torch.arange(N), "
                   "positions] only (one row per sample, positions an (N,) tensor)"
                   if tensors and index[0] != slice(None) else "")
            raise self.unsupported(f"indexes with {index!r}{why}; only pieces of chunk/split, "
                                   "x[:, :, ::s, ::s], slices, positions and constant rows of "
                                   "the dimensions after the batch are supported")
        for dim, i in enumerate(index[1:], 1):
            size = self.b.spec(x).shape[dim]
            start, stop, _ = (slice(i, i + 1 if i != -1 else None) if isinstance(i, int)
                              else i).indices(size)
            if (start, stop) != (0, size):
                x = self.b.slice(x, start, stop, dim=dim, name=self.name("slice"))
        out_shape = self.traced_shape(node)
        if self.b.spec(x).shape != out_shape:
            x = self._op("reshape", [x], out_shape, self.name("select"))
        return x

    def _picks_per_sample(self, node, shape, index) -> bool:
        """Whether the index is x[torch.arange(N), positions, ...]: one row of dimension 1 per
        sample, positions an (N,) tensor of buffers and constants (computed from the ids:
        GPT-2's classifier's last token that is not padding)."""
        n = shape[0]
        raw = node.args[1] if len(node.args) > 1 else None
        if len(shape) < 3 or len(index) < 2 or not isinstance(raw, tuple) or \
                any(i != slice(None) for i in index[2:]) or \
                not all(getattr(i, "shape", None) == (n,) and not isinstance(i, str)
                        and not getattr(i, "is_parameter", False) for i in index[:2]):
            return False
        rows = self.constant_values(raw[0])
        return rows is not None and bool(self.torch.equal(   # on the CPU, whatever the default
            rows.cpu().long(), self.torch.arange(n, device="cpu")))

    def _stack(self, node):
        """torch.stack of tensors of one shape along a new dimension after the batch (CoaT's
        class tokens of three stages): each seen with that dimension (a view), concatenated
        along it (a copy, as PyTorch's stack writes); along a new first dimension, a value
        that only its mean over the stack reads."""
        a = self.bind(_sig_stack, node)
        xs = [self.tensor(t) for t in a["tensors"]]
        shape = self.b.spec(xs[0]).shape
        dim = a["dim"] % (len(shape) + 1)
        if dim == 0 and all(self.b.spec(x).shape == shape for x in xs):
            return _Stacked(tuple(xs))
        seen = (*shape[:dim], 1, *shape[dim:])
        xs = [self.b.reshape(x, seen, name=self.name("stacked")) for x in xs]
        return self.b.concat(xs, dim=dim, name=self.name("stack"))

    def mean_of_stacked(self, node, stacked: _Stacked):
        """torch.mean(torch.stack(xs), 0): the sum of the tensors, one add after another, then
        divided by their count (PyTorch's stack copy and mean read and write as much)."""
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if dims not in (0, (0,), [0]) or node.kwargs.get("keepdim"):
            raise self.unsupported("reduces tensors stacked before the batch other than by their "
                                   "mean over the stack")
        out = stacked.tensors[0]
        for x in stacked.tensors[1:]:
            out = self.b.add(out, x, name=self.name("stack_sum"))
        return self.b.scalar(out, scale=1.0 / len(stacked.tensors), name=self.name("mean"))

    # -- reshapes --------------------------------------------------------------------------
    def _is_alias(self, node) -> bool:
        return bool(node.meta.get("dnnsim_alias", True))

    def _same_values(self, x, node, base: str):
        """`x` seen with the traced shape: a view if PyTorch made one, else a copy then a view."""
        out_shape, in_shape = self.known_shape(node), self.b.spec(x).shape
        if not self._is_alias(node):
            x = self._copy(x, base)
            if out_shape == in_shape:
                return x
        if out_shape == in_shape:
            return x
        if out_shape[0] != in_shape[0]:
            raise self.unsupported(f"reshapes {in_shape} to {out_shape}; only reshapes that "
                                   "keep the batch dimension are supported")
        # why: a permuted view PyTorch could view with this shape (splitting a dimension) is
        # copied here, as the builder's reshape copies; named here, so never a name clash
        x = self.b.contiguous(x, name=self.name("contiguous"))
        if len(out_shape) == 2 and len(in_shape) > 2:
            return self.b.flatten(x, name=self.name(base))
        return self.b.reshape(x, out_shape, name=self.name(base))

    def _copy(self, x, base: str):
        """A contiguous copy of a strided view (x.contiguous(), or a reshape that cannot view)."""
        if not self._has_kind("contiguous"):
            raise self.unsupported("copies a strided view, which needs the op kind "
                                   "'contiguous' that this IR does not declare")
        src = self.b.graph.op(x)
        shape = src.out.shape
        dims, source = (src.attrs["dims"], src.in_specs[0].shape) if src.kind == "permute" \
            else (tuple(range(len(shape))), shape)   # a strided slice: copied as it is
        return self._op("contiguous", [x], shape, self.name("contiguous"),
                        {"dims": dims, "source_shape": source})

    def _flatten(self, arg, start_dim, end_dim, name):
        x = self.tensor(arg)
        rank = len(self.b.spec(x).shape)
        start, end = start_dim % rank, end_dim % rank
        if start > end:
            raise self.unsupported(f"flattens dims {start_dim}..{end_dim}")
        if start == 0 and end > 0:
            raise self.unsupported(f"flattens dims {start_dim}..{end_dim}, merging the batch; "
                                   "only flattens that keep the batch dimension are supported")
        if start == end:
            return x
        shape = self.b.spec(x).shape
        out = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
        if not self._is_alias(self.node):
            x = self._copy(x, "flatten")
        if len(out) == 2:
            return self.b.flatten(x, name=name)
        return self.b.reshape(x, out, name=name)

    def _flatten_fn(self, node):
        a = self.bind(_sig_flatten, node)
        return self._flatten(a["input"], a["start_dim"], a["end_dim"], self.name("flatten"))

    def _unsqueeze(self, node):
        value = self.value(node.args[0])
        if isinstance(value, _Param):   # a view of a parameter read as data (DETR's queries)
            return dataclasses.replace(value, shape=self.known_shape(node))
        x = self.tensor(node.args[0])
        return self.b.reshape(x, self.known_shape(node), name=self.name("unsqueeze"))

    def _batch_transpose(self, node):
        """x.t() of an (N, D) tensor moves the batch: an in-batch product (CLIP's logits over
        every pair of the batch) that no policy splitting the batch can split."""
        raise self.unsupported(f"transposes the batch of {self.traced_shape(node.args[0])} "
                               "(an in-batch product, such as a contrastive loss's logits "
                               "over every pair of the batch, which no policy that splits the "
                               "batch can split); compute the loss outside the model")

    def _repeat_parameter(self, node):
        """A (1, ...) view of a parameter repeated over the batch (DETR's learned queries,
        `self.query.weight.unsqueeze(0).repeat(n, 1, 1)`): one learned_queries copy holding
        the parameter; a (1, ...) tensor repeated so: a repeat_batch copy."""
        param, out = self.value(node.args[0]), self.traced_shape(node)
        if isinstance(param, str) and (shape := self.b.spec(param).shape)[0] == 1 and \
                len(shape) >= 2 and out == (self.b.batch, *shape[1:]):
            # one sample's tensor (a positional encoding computed once) given to every sample
            return self._op("repeat_batch", [param], out, self.name("repeat_batch"))
        if not (isinstance(param, _Param) and param.is_parameter and len(param.shape) >= 2
                and param.shape[0] == 1 and out == (self.b.batch, *param.shape[1:])):
            raise self.unsupported("repeats a tensor; only a tensor or parameter of a leading "
                                   "1 repeated over the batch (learned queries) is supported")
        op = self.b.learned_queries(param.shape[1:], name=self.name("learned_queries"))
        self._claim([param], op)
        return op

    def _reshape(self, node):
        src, out_shape = self.value(node.args[0]), self.known_shape(node)
        if isinstance(src, _Pending) and src.kind == "shuffle_transposed":
            if out_shape == self.b.spec(src.source).shape:
                return self.b.channel_shuffle(src.source, src.groups,
                                              name=self.name("channel_shuffle"))
            raise self.unsupported("reshapes a transposed view other than back to (n, c, h, w)")
        if isinstance(src, _Pending) and src.kind in ("expanded", "expanded_seq"):
            return self.repeated_heads(src, out_shape)
        x = self.tensor(node.args[0])
        in_shape = self.b.spec(x).shape
        if (len(in_shape) == 4 and len(out_shape) == 5 and out_shape[0] == in_shape[0]
                and out_shape[1] * out_shape[2] == in_shape[1] and out_shape[3:] == in_shape[2:]):
            return _Pending("shuffle_split", x, groups=out_shape[1])
        return self._same_values(x, node, "reshape" if out_shape != (in_shape[0], math.prod(
            in_shape[1:])) else "flatten")

    # -- permutations ----------------------------------------------------------------------
    def _transpose(self, node):
        a = self.bind(_sig_transpose, node)
        src = self.value(a["input"])
        if (isinstance(src, _Pending) and src.kind == "shuffle_split"
                and sorted((a["dim0"] % 5, a["dim1"] % 5)) == [1, 2]):
            return _Pending("shuffle_transposed", src.source, groups=src.groups)
        x = self.tensor(a["input"])
        rank = len(self.b.spec(x).shape)
        dims = list(range(rank))
        d0, d1 = a["dim0"] % rank, a["dim1"] % rank
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return self._permuted(x, tuple(dims), "transpose")

    def _permute(self, node):
        x = self.tensor(node.args[0])
        dims = node.args[1:] if len(node.args) > 1 else (node.kwargs.get("dims"),)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = dims[0]
        rank = len(self.b.spec(x).shape)
        return self._permuted(x, tuple(int(d) % rank for d in dims), "permute")

    def _permuted(self, x, dims, base):
        if dims == tuple(range(len(dims))):
            return x
        if dims[0] != 0:
            raise self.unsupported(f"permutes dimensions {dims}, moving the batch; only "
                                   "permutes that keep the batch first are supported")
        if not self._has_kind("permute"):
            raise self.unsupported("permutes dimensions, which needs the op kind 'permute' that "
                                   "this IR does not declare")
        shape = self.b.spec(x).shape
        return self._op("permute", [x], tuple(shape[d] for d in dims), self.name(base),
                        {"dims": dims})

    def _contiguous(self, node):
        src = self.value(node.args[0])
        if isinstance(src, _Pending):
            return src
        x = self.tensor(node.args[0])
        return x if self._is_alias(node) else self._copy(x, "contiguous")

    # -- the IR's kinds --------------------------------------------------------------------
    def _has_kind(self, name: str) -> bool:
        try:
            from .kinds import is_kind
        except ImportError:
            return False
        return is_kind(name)

    def _op(self, kind, inputs, shape, name, attrs=None, params=0):
        """An op of a kind the builder has no method for (shape computed by the caller)."""
        try:
            return self.b._add(kind, inputs, shape, name, attrs, params)
        except WorkloadError as exc:
            raise self.unsupported(f"cannot be lowered: {exc}") from None
