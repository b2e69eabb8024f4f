"""What torch_import lowers as values that are no ops, until an op reads them: tensors of
buffers and constants (_Aux: an attention mask), a parameter table indexed by a buffer
(_Gathered: a relative position bias), a parameter expanded over the batch (_Expanded: ViT's
class token), heads expanded before a reshape repeats them; and the operands they become (a
bias added to attention scores, a class token concatenated before the sequence, a table of
constants multiplied in, a parameter used as data).

`OperandLowering` is a base of torch_transformer.TransformerLowering; the host
(torch_import._Lowering) provides the builder and the node helpers. torch is never imported
here.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from .torch_layers import _Param
from .torch_state import LoweringState
from .torch_values import _Const, _Pending


@dataclass(frozen=True)
class _Aux:
    """A tensor computed from buffers and constants only (an attention mask): no op."""
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Gathered:
    """A parameter table indexed by a buffer, then only reshaped: a relative position bias
    (no op until it is added to attention scores); masked: a mask of buffers and constants
    added to it too (T5's decoder joins its bias and the causal mask)."""
    param: _Param
    shape: tuple[int, ...]
    masked: bool = False


_SHAPE_ONLY = {"view", "reshape", "permute", "contiguous", "unsqueeze", "flatten"}
# what broadcasts its operands as PyTorch broadcasts an expanded view (no copy either way)
_BROADCASTING_METHODS = {"mul", "mul_", "add", "add_", "sub", "sub_", "div", "div_"}
_BROADCASTING_OPERATORS = (operator.mul, operator.add, operator.sub, operator.truediv,
                           operator.imul, operator.iadd, operator.isub, operator.itruediv)


@dataclass(frozen=True)
class _Expanded:
    """A parameter expanded over the batch (ViT's class token before its concatenation)."""
    param: _Param


class OperandLowering(LoweringState):
    # -- values that are no ops ----------------------------------------------------------------
    def aux_value(self, node):
        """An _Aux where every tensor the node reads is a buffer or another _Aux (or it reads
        none and makes a tensor: torch.ones(...)); None otherwise."""
        meta = node.meta.get("tensor_meta")
        pieces = isinstance(meta, (tuple, list)) and bool(meta) and all(
            hasattr(m, "shape") for m in meta)   # split or chunk of a constant: constants
        if not pieces and not hasattr(meta, "shape"):
            return None
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        values = [self.env[i] for i in inputs]
        if node.op == "call_module" or any(
                isinstance(v, (str, tuple, list)) or (isinstance(v, _Param) and v.is_parameter)
                or type(v).__name__ in ("_Pending", "_ParamRows", "_Stacked", "_BiasTable")
                or isinstance(v, (_Expanded, _Gathered))   # they hold a parameter
                for v in values):
            return None
        if pieces:
            tensors = [v for v in values if not isinstance(v, _Const)]   # sizes aside
            if not tensors or not all(isinstance(v, _Aux) or (isinstance(v, _Param) and
                                                              not v.is_parameter)
                                      for v in tensors):
                return None   # pieces of anything else are their op's (split, unbind)
            return tuple(_Aux(tuple(int(d) for d in m.shape)) for m in meta)
        return _Aux(self.known_shape(node))

    def gathered_value(self, node):
        """A _Gathered for a parameter indexed by a buffer (table[index]) or a reshape of
        one; None otherwise."""
        if node.op not in ("call_function", "call_method") or not node.args:
            return None
        src = self.value(node.args[0])
        name = getattr(node.target, "__name__", node.target)
        if isinstance(src, _Gathered) and (name in _SHAPE_ONLY or name == "expand"):
            # expanded over the batch (MPNet's bias): the same offsets for every sample; the
            # copy its `contiguous()` then makes is not costed
            return _Gathered(src.param, self.known_shape(node), src.masked)
        values = [self.value(a) for a in node.args]
        tables = [v for v in values if isinstance(v, _Gathered)]
        if len(tables) == 1 and name in ("add", "iadd", "where") and all(
                v is tables[0] or self._is_constant_operand(v) for v in values):
            # a relative position bias with a mask of buffers and constants added, or filled
            # in where a constant condition says (T5's decoder, its causal mask)
            return _Gathered(tables[0].param, self.known_shape(node), True)
        index = self.value(node.args[1]) if len(node.args) > 1 else None
        if (name == "getitem" and isinstance(src, _Param) and src.is_parameter
                and (isinstance(index, _Aux) or isinstance(index, _Param)
                     and not index.is_parameter)):
            ids = tuple(index.shape)
            if len(src.shape) == 2 and len(ids) == 2 and ids[0] in (1, self.b.batch):
                # rows of a (P, D) table at ids per position (Whisper's decoder positions,
                # weight[position_ids]): the rows a position table adds, as a lookup's
                rows = self.looked_up_rows(src, node.args[1])
                if rows is not None:
                    return rows
            return _Gathered(src, self.known_shape(node))
        return None

    @staticmethod
    def _is_constant_operand(v) -> bool:
        """A number, or a tensor of buffers and constants."""
        return isinstance(v, (int, float, _Const, _Aux)) or \
            isinstance(v, _Param) and not v.is_parameter

    def bias_operand(self, a):
        """scores + a gathered relative position table (attention_bias), or scores +
        a mask computed from buffers or constants (costed as the causal mask's fill): the
        op, or None where neither operand is one of those."""
        vx, vy = (self.value(a[k]) for k in ("input", "other"))
        extra = vx if isinstance(vx, (_Gathered, _Aux)) else \
            vy if isinstance(vy, (_Gathered, _Aux)) else None
        if extra is None:
            return None
        x = self.tensor(a["other"] if extra is vx else a["input"])
        shape = self.b.spec(x).shape
        if isinstance(extra, _Aux):
            # Broadcasting aligns trailing dimensions; the constant may have fewer.
            if any(e not in (1, s)
                   for e, s in zip(reversed(extra.shape), reversed(shape), strict=False)):
                raise self.unsupported(f"adds a constant tensor {extra.shape} that does not "
                                       f"broadcast over {shape}")
            return self._masked_fill(x, 0.0, self.name("mask"))
        return self.relative_bias(x, extra)

    def relative_bias(self, x, gathered):
        """scores x (..., heads, Q, K) plus a (P, heads) table gathered to (heads, Q, K)
        offsets, or those offsets expanded over the scores' leading dimensions (Swin's,
        MaxViT's and BEiT's relative position bias, T5's and MPNet's buckets): one
        attention_bias op holding the table, whose index is a window's relative coordinates
        where the table is ((2s-1)^2, heads) and Q = K = s * s."""
        shape = self.b.spec(x).shape
        table, bias = gathered.param.shape, tuple(gathered.shape)
        heads = shape[-3] if len(shape) >= 3 else 0
        if (len(shape) < 4 or len(table) != 2 or table[1] != heads
                or bias[-3:] != tuple(shape[-3:]) or len(bias) > len(shape)
                or any(d not in (1, s) for d, s in zip(bias[:-3], shape[-len(bias):-3],
                                                       strict=True))):
            raise self.unsupported(f"adds a gathered table {table} as {bias} to {shape}; only "
                                   "a (P, heads) table gathered to (heads, Q, K) offsets added "
                                   "to (..., heads, Q, K) scores is supported")
        queries, keys = shape[-2:]
        window = math.isqrt(queries)
        index = "window" if queries == keys == window * window and \
            table[0] == (2 * window - 1) ** 2 else "constant"
        out = self._op("attention_bias", [x], shape, self.name("relative_position_bias"),
                       {"queries": queries, "keys": keys, "table_shape": table,
                        "table_layout": "positions_heads", "index": index},
                       params=math.prod(table))
        self._claim([gathered.param], out)
        # the mask joined with the bias (T5's decoder), costed as masks of constants are
        return self._masked_fill(out, 0.0, self.name("mask")) if gathered.masked else out

    def _expand(self, node):
        src = self.value(node.args[0])
        if isinstance(src, _Param) and src.is_parameter and node.target == "expand":
            return _Expanded(src)
        if isinstance(src, str) and self._broadcast_only(node, src):
            self.broadcast_views.add(node)
            return src
        if isinstance(src, str) and node.target == "expand":
            shape, out = self.b.spec(src).shape, self.traced_shape(node)
            grown = [d for d, (i, o) in enumerate(zip(shape, out or (), strict=False))
                     if i != o]
            if out is not None and len(out) == 5 == len(shape) and grown == [2] \
                    and shape[2] == 1:
                return _Pending("expanded", src, groups=out[2])
            if out is not None and len(out) == 5 == len(shape) and grown == [3] \
                    and shape[3] == 1:   # heads after the sequence (Meta's layout)
                return _Pending("expanded_seq", src, groups=out[3])
        raise self.unsupported("expands a computed tensor; only a parameter expanded over the "
                               "batch before a concatenation (a class token), heads "
                               "(N, KV, 1, S, D) or (N, S, KV, 1, D) expanded, then reshaped "
                               "to (N, KV * r, S, D) or (N, S, KV * r, D) (repeat_kv), and a "
                               "tensor expanded after the batch that only arithmetic reads are "
                               "supported")

    def _broadcast_only(self, node, src: str) -> bool:
        """Whether `x.expand(...)` / `x.expand_as(y)` of computed tensor `src` keeps its batch
        and is read only by arithmetic that broadcasts (ECA's and MobileViT-v2's
        `x * y.expand_as(x)`): the arithmetic then reads `src` itself, as PyTorch's kernel
        reads the expanded view, with the same values, FLOPs and bytes."""
        shape, out = self.b.spec(src).shape, self.traced_shape(node)
        if out is None or len(out) != len(shape) or out[0] != shape[0] or \
                any(i not in (1, o) for i, o in zip(shape, out, strict=True)):
            return False
        torch = self.torch
        functions = (*_BROADCASTING_OPERATORS, torch.mul, torch.add, torch.sub, torch.div)
        return bool(node.users) and all(
            u.op == "call_method" and u.target in _BROADCASTING_METHODS or
            u.op == "call_function" and u.target in functions for u in node.users)

    def repeated_heads(self, pending, out_shape):
        """x[:, :, None].expand(n, kv, r, s, d).reshape(n, kv * r, s, d), Hugging Face's
        repeat_kv for grouped-query attention: one repeat_heads copy. With the heads after the
        sequence (Meta's and llama2.c's repeat_kv, x[:, :, :, None, :].expand(n, s, kv, r, d)
        .reshape(n, s, kv * r, d)), the same copy between two permutes (views)."""
        seq_first = pending.kind == "expanded_seq"
        shape = self.b.spec(pending.source).shape
        n, kv, s, d = (shape[0], shape[2], shape[1], shape[4]) if seq_first else \
            (shape[0], shape[1], shape[3], shape[4])
        want = (n, s, kv * pending.groups, d) if seq_first else (n, kv * pending.groups, s, d)
        if tuple(out_shape) != want:
            raise self.unsupported(f"reshapes heads expanded from {shape} as {out_shape}; "
                                   f"only {want} is supported")
        x = self._op("reshape", [pending.source], (n, s, kv, d) if seq_first else (n, kv, s, d),
                     self.name("heads"))
        if seq_first:
            x = self._permuted(x, (0, 2, 1, 3), "permute")
        x = self.b.repeat_heads(x, pending.groups, name=self.name("repeat_heads"))
        return self._permuted(x, (0, 2, 1, 3), "permute") if seq_first else x

    def class_token_cat(self, tensors, dim):
        """torch.cat([token.expand(n, -1, -1), ..., x], 1) of (1, T, D) tokens (ViT's class
        token, DeiT's class and distillation tokens, timm's registers; YOLOS's detection
        tokens after the sequence), or the tokens put between consecutive slices of one
        sequence (Hugging Face's DINOv2 registers:
        cat([x[:, :1], reg.expand(n, -1, -1), x[:, 1:]], 1)): one class_token op of the
        sequence, the copy PyTorch's cat makes, or None."""
        values = [self.value(t) for t in tensors]
        tokens = [v.param for v in values if isinstance(v, _Expanded)]
        pieces = [t for t, v in zip(tensors, values, strict=True) if not isinstance(v, _Expanded)]
        if not tokens or not pieces or \
                len(pieces) > 1 and self._sliced_whole(tensors, values) is None:
            return None
        x = self.tensor(pieces[0]) if len(pieces) == 1 else self._sliced_whole(tensors, values)
        assert x is not None
        shape = self.b.spec(x).shape
        if len(shape) != 3 or dim % 3 != 1 or \
                any(len(t.shape) != 3 or t.shape[::2] != (1, shape[2]) for t in tokens):
            raise self.unsupported(f"concatenates parameters {[t.shape for t in tokens]} with "
                                   f"{shape}; only (1, T, D) tokens beside an (N, S, D) "
                                   "sequence (or between slices of it) are supported")
        out = self.b.class_token(x, name=self.name("class_token"),
                                 tokens=sum(t.shape[1] for t in tokens))
        self._claim(tokens, out)
        return out

    def _sliced_whole(self, tensors, values) -> str | None:
        """The sequence whose consecutive slices along dimension 1, from its start to its end,
        are the pieces of `tensors` that are not expanded parameters; None where they are not
        that."""
        pieces = [self.b.graph.op(v) for v in values if isinstance(v, str)]
        if len(pieces) + sum(isinstance(v, _Expanded) for v in values) != len(values) or \
                not pieces or any(p.kind != "slice" or p.attrs["dim"] != 1 for p in pieces):
            return None
        source = pieces[0].inputs[0]
        stops = [0] + [p.attrs["stop"] for p in pieces]
        if any(p.inputs[0] != source or p.attrs["start"] != stop
               for p, stop in zip(pieces, stops, strict=False)) or \
                stops[-1] != self.b.spec(source).shape[1]:
            return None
        return source

    def table_operand(self, a):
        """x * a tensor of buffers and constants (a rotary embedding's cos or sin table,
        sliced to the sequence or computed from position ids): a mul_table op, the table
        getting no gradient; None where neither factor is one."""
        vx, vy = (self.value(a[k]) for k in ("input", "other"))

        def constant_table(v):
            return isinstance(v, _Aux) or isinstance(v, _Param) and not v.is_parameter
        if not (constant_table(vx) or constant_table(vy)) or \
                (constant_table(vx) and constant_table(vy)):
            return None
        table = vx if constant_table(vx) else vy
        x = self.tensor(a["other"] if table is vx else a["input"])
        shape, table_shape = self.b.spec(x).shape, tuple(table.shape)
        while len(table_shape) > 1 and table_shape[0] == 1:
            table_shape = table_shape[1:]      # leading ones broadcast away
        if len(table_shape) == len(shape) and table_shape[0] == shape[0] and all(
                t in (1, s) for t, s in zip(table_shape[1:], shape[1:], strict=True)):
            # a mask per sample multiplied in (DeBERTa's attention mask over its embeddings):
            # costed as masks of constants are, the causal mask's fill
            return self._masked_fill(x, 0.0, self.name("mask"))
        if len(table_shape) >= len(shape) or any(
                t != s and 1 not in (t, s) for t, s in zip(reversed(table_shape),
                                                          reversed(shape), strict=False)):
            raise self.unsupported(f"multiplies {shape} by a constant tensor {tuple(table.shape)}"
                                   "; only a table broadcast over the batch and x's trailing "
                                   "dimensions is supported")
        return self.b.mul_table(x, table_shape, name=self.name("mul_table"))

    def param_operand(self, a, kind: str):
        """x + table (position embedding) or x * scale (layer scale) with a parameter read
        directly: the op, or None where neither operand is a parameter."""
        vx, vy = (self.value(a[k]) for k in ("input", "other"))
        param = vx if isinstance(vx, _Param) else vy if isinstance(vy, _Param) else None
        if param is None:
            return None
        x = self.tensor(a["other"] if param is vx else a["input"])
        shape = self.b.spec(x).shape
        broadcasts = not (len(param.shape) >= len(shape) and param.shape[0] != 1) and all(
            # trailing dimensions align; the parameter may have fewer
            p in (1, s) for p, s in zip(reversed(param.shape), reversed(shape), strict=False))
        if kind == "add" and len(shape) == 3 and param.shape in ((1, *shape[1:]), shape[1:]):
            out = self.b.position_embedding(x, shape[1], name=self.name("position_embedding"))
        elif not broadcasts:
            raise self.unsupported(f"{'adds' if kind == 'add' else 'multiplies'} a parameter "
                                   f"{param.shape} to {shape}; only a parameter that "
                                   "broadcasts over the tensor without the batch is supported")
        else:   # a learned shift (a bias) or scale (a layer scale) broadcast over x
            out = self._op("bias_add" if kind == "add" else "layer_scale", [x], shape,
                           self.name("bias_add" if kind == "add" else "layer_scale"),
                           {"param_shape": param.shape}, params=math.prod(param.shape))
        self._claim([param], out)
        return out
