"""How torch_import lowers attention and the layers of transformers.

`TransformerLowering` is a mixin of `torch_import._Lowering`. Lowered:
- nn.MultiheadAttention (batch_first; self-attention, or cross-attention on another tensor)
  as PyTorch's training path runs it: the packed input projection, the copy that splits q, k
  and v, heads as views, then fused attention (need_weights=False: F.scaled_dot_product_
  attention) or the explicit path (need_weights=True: scaled q, the product with k^T, the
  mask, softmax, dropout, the product with v; the weights PyTorch averages over the heads for
  its second output are not costed), the copy that merges the heads, the output projection;
- nn.TransformerEncoderLayer / DecoderLayer and their stacks (the layers around the
  attention blocks: torch_transformer_layers.py), nn.Embedding and F.embedding;
- F.scaled_dot_product_attention, torch.matmul / bmm / @, softmax and masked_fill: attention
  written by hand. A mask of any pattern is costed as the causal mask's fill (the same
  traffic); a mask computed from buffers or constants is no op of the graph;
- a product with a tensor of buffers and constants (rotary cos and sin tables): mul_table;
- heads expanded then reshaped (Hugging Face's repeat_kv): repeat_heads;
- parameters used as data: ViT's class token (expanded, then concatenated before the
  sequence), a position table added to the sequence, ConvNeXt's layer scale (a product).
torch is never imported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .torch_functions import _Const, _Pending
from .torch_layers import _Param


@dataclass(frozen=True)
class _Aux:
    """A tensor computed from buffers and constants only (an attention mask): no op."""
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Gathered:
    """A parameter table indexed by a buffer, then only reshaped: a relative position bias
    (no op until it is added to attention scores)."""
    param: _Param
    shape: tuple[int, ...]


_SHAPE_ONLY = {"view", "reshape", "permute", "contiguous", "unsqueeze", "flatten"}


@dataclass(frozen=True)
class _Expanded:
    """A parameter expanded over the batch (ViT's class token before its concatenation)."""
    param: _Param


def _sig_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False): ...
def _sig_matmul(input, other): ...
def _sig_softmax(input, dim=None, _stacklevel=3, dtype=None): ...
def _sig_masked_fill(input, mask, value): ...
def _sig_embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
                   scale_grad_by_freq=False, sparse=False): ...
def _sig_mha(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
             average_attn_weights=True, is_causal=False): ...



class TransformerLowering:
    def transformer_handlers(self, torch) -> tuple[dict, dict, dict]:
        """(functions, Tensor methods, modules) lowered here."""
        import operator
        F, nn = torch.nn.functional, torch.nn
        functions = {
            F.scaled_dot_product_attention: self._sdpa_fn, torch.matmul: self._matmul_fn,
            operator.matmul: self._matmul_fn, torch.bmm: self._matmul_fn,
            F.softmax: self._softmax_fn, torch.softmax: self._softmax_fn,
            torch.masked_fill: self._masked_fill_fn, F.embedding: self._embedding_fn,
            torch._assert: lambda node: _Const(None),   # checks PyTorch already ran
        }
        methods = {
            "matmul": self._matmul_fn, "bmm": self._matmul_fn, "softmax": self._softmax_fn,
            "masked_fill": self._masked_fill_fn, "masked_fill_": self._masked_fill_fn,
            "expand": self._expand,
        }
        modules = {
            nn.MultiheadAttention: self._mha_module, nn.Embedding: self._embedding_module,
            nn.TransformerEncoderLayer: self._encoder_layer_module,
            nn.TransformerDecoderLayer: self._decoder_layer_module,
            nn.TransformerEncoder: self._stack_module, nn.TransformerDecoder: self._stack_module,
        }
        return functions, methods, modules

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
                or type(v).__name__ in ("_Pending", "_ParamRows", "_Stacked")
                or isinstance(v, _Expanded)
                for v in values):
            return None
        if pieces:
            tensors = [v for v in values if not isinstance(v, _Const)]   # sizes aside
            if not tensors or not all(isinstance(v, _Aux) or (isinstance(v, _Param) and
                                                              not v.is_parameter)
                                      for v in tensors):
                return None   # pieces of anything else are their op's (split, unbind)
            return tuple(_Aux(tuple(int(d) for d in m.shape)) for m in meta)
        return _Aux(self.traced_shape(node))

    def gathered_value(self, node):
        """A _Gathered for a parameter indexed by a buffer (table[index]) or a reshape of
        one; None otherwise."""
        if node.op not in ("call_function", "call_method") or not node.args:
            return None
        src = self.value(node.args[0])
        name = getattr(node.target, "__name__", node.target)
        if isinstance(src, _Gathered) and name in _SHAPE_ONLY:
            return _Gathered(src.param, self.traced_shape(node))
        index = self.value(node.args[1]) if len(node.args) > 1 else None
        if (name == "getitem" and isinstance(src, _Param) and src.is_parameter
                and (isinstance(index, _Aux) or isinstance(index, _Param)
                     and not index.is_parameter)):
            return _Gathered(src, self.traced_shape(node))
        return None

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
        offsets (Swin's, MaxViT's and BEiT's relative position bias, T5's buckets): one
        attention_bias op holding the table, whose index is a window's relative coordinates
        where the table is ((2s-1)^2, heads) and Q = K = s * s."""
        shape = self.b.spec(x).shape
        table, bias = gathered.param.shape, tuple(gathered.shape)
        heads = shape[-3] if len(shape) >= 3 else 0
        if (len(shape) < 4 or len(table) != 2 or table[1] != heads
                or bias[-3:] != tuple(shape[-3:]) or any(d != 1 for d in bias[:-3])):
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
        return out

    def _expand(self, node):
        src = self.value(node.args[0])
        if isinstance(src, _Param) and src.is_parameter:
            return _Expanded(src)
        if isinstance(src, str):
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
                               "batch before a concatenation (a class token) and heads "
                               "(N, KV, 1, S, D) or (N, S, KV, 1, D) expanded, then reshaped "
                               "to (N, KV * r, S, D) or (N, S, KV * r, D) (repeat_kv) are "
                               "supported")

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
        """torch.cat([token.expand(n, -1, -1), ..., x], 1), one token or more (DeiT's class
        and distillation tokens): one class_token op, or None."""
        if not (len(tensors) >= 2 and all(isinstance(self.value(t), _Expanded)
                                          for t in tensors[:-1])):
            return None
        tokens = [self.value(t).param for t in tensors[:-1]]
        x = self.tensor(tensors[-1])
        shape = self.b.spec(x).shape
        if len(shape) != 3 or dim % 3 != 1 or \
                any(t.shape != (1, 1, shape[2]) for t in tokens):
            raise self.unsupported(f"concatenates parameters {[t.shape for t in tokens]} with "
                                   f"{shape}; only (1, 1, D) tokens before an (N, S, D) "
                                   "sequence are supported")
        out = self.b.class_token(x, name=self.name("class_token"), tokens=len(tokens))
        self._claim(tokens, out)
        return out

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
                t not in (1, s) for t, s in zip(reversed(table_shape), reversed(shape),
                                                strict=False)):
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

    # -- functions -------------------------------------------------------------------------
    def _sdpa_fn(self, node):
        a = self.bind(_sig_sdpa, node)
        q, k, v = (self.tensor(a[n]) for n in ("query", "key", "value"))
        if a["enable_gqa"]:
            raise self.unsupported("uses enable_gqa; only equal heads for q, k, v are modelled")
        causal = bool(a["is_causal"]) or a["attn_mask"] is not None
        return self.b.attention(q, k, v, causal=causal, name=self.name("attention"))

    def _matmul_fn(self, node):
        a = self.bind(_sig_matmul, node)
        x, y = self.tensor(a["input"]), self.tensor(a["other"])
        return self.b.batched_matmul(x, y, name=self.name("matmul"))

    def _softmax_fn(self, node):
        a = self.bind(_sig_softmax, node)
        source = getattr(a["input"].meta.get("tensor_meta"), "dtype", None) \
            if hasattr(a["input"], "meta") else None
        if a["dim"] is None or a["dtype"] not in (None, source):
            raise self.unsupported("needs an explicit dim and no dtype other than the input's")
        return self.b.softmax(self.tensor(a["input"]), a["dim"], name=self.name("softmax"))

    def _masked_fill_fn(self, node):
        a = self.bind(_sig_masked_fill, node)
        x = self.tensor(a["input"])
        mask = self.value(a["mask"])
        if not (isinstance(mask, _Aux) or isinstance(mask, _Param) and not mask.is_parameter):
            raise self.unsupported("masks with a tensor computed from the input; only masks "
                                   "of buffers and constants are supported")
        value = self._constant(a["value"])
        if value is None:
            raise self.unsupported("fills with a tensor; only a constant is supported")
        return self._masked_fill(x, value, self.name("masked_fill"))

    def _masked_fill(self, x, value, name):
        return self._op("masked_fill", [x], self.b.spec(x).shape, name,
                        {"mask": "causal", "value": float(value)})

    def _embedding_fn(self, node):
        a = self.bind(_sig_embedding, node)
        w = self._param_arg(self.value(a["weight"]), "weight")
        if a["max_norm"] is not None:
            raise self.unsupported("renormalises rows (max_norm); only plain lookups are supported")
        if (rows := self.looked_up_rows(w, a["input"])) is not None:
            return rows
        out = self.b.embedding(self.tensor(a["input"]), *w.shape, name=self.name("embedding"))
        self._claim([w], out)
        return out

    # -- modules ---------------------------------------------------------------------------
    def _embedding_module(self, m, node, x):
        if m.max_norm is not None:
            raise self.unsupported("renormalises rows (max_norm); only plain lookups are supported")
        table = _Param(f"{node.target}.weight", tuple(m.weight.shape), True)
        if (rows := self.looked_up_rows(table, node.args[0])) is not None:
            return rows
        return self.b.embedding(x(), m.num_embeddings, m.embedding_dim, name=self.name(""))

    def _mha_module(self, m, node, x):
        a = self.bind(_sig_mha, node)
        if a["key_padding_mask"] is not None:
            raise self.unsupported("takes a key_padding_mask; only attn_mask and is_causal are "
                                   "supported")
        q = self.tensor(a["query"])
        kv = [self.tensor(a["key"]), self.tensor(a["value"])]
        causal = bool(a["is_causal"]) or a["attn_mask"] is not None
        out = self._attention_block(m, q, kv, causal, bool(a["need_weights"]), "")
        return (out, _Const(None))

    def _attention_block(self, m, q, kv, causal, need_weights, prefix):
        """nn.MultiheadAttention on q (N, L, E) and k, v (N, S, E), ops named prefix.*"""
        if not m.batch_first:
            raise self.unsupported("has batch_first=False; only batch_first=True is supported "
                                   "(the input's first dimension is the batch)")
        if m.bias_k is not None or m.add_zero_attn or not m._qkv_same_embed_dim:
            raise self.unsupported("has bias_k/bias_v, add_zero_attn or kdim/vdim; only the "
                                   "packed projection of equal q, k, v sizes is supported")
        n, length, e = self.b.spec(q).shape
        heads, bias = m.num_heads, m.in_proj_bias is not None
        hd = e // heads
        def name(part):
            return self.name(f"{prefix}{part}")
        if q == kv[0] == kv[1]:
            qkv = self.b.linear(q, 3 * e, bias=bias, name=name("in_proj"))
            parts = self._split_packed(qkv, 3, name)
        else:
            pq = self.b.linear(q, e, bias=bias, name=name("in_proj_q"))
            if kv[0] == kv[1]:
                parts = [pq, *self._split_packed(
                    self.b.linear(kv[0], 2 * e, bias=bias, name=name("in_proj_kv")), 2, name)]
            else:
                parts = [pq] + [self.b.linear(t, e, bias=bias, name=name(f"in_proj_{w}"))
                                for t, w in zip(kv, "kv", strict=True)]
        heads_of = []
        for t, w in zip(parts, "qkv", strict=True):
            tn, ts, _ = self.b.spec(t).shape
            r = self._op("reshape", [t], (tn, ts, heads, hd), name(f"{w}_heads"))
            heads_of.append(self._permute_view(r, (0, 2, 1, 3), name(f"{w}_heads_t")))
        hq, hk, hv = heads_of
        if need_weights:
            y = self._explicit_attention(hq, hk, hv, causal, m.dropout, name)
        else:
            y = self.b.attention(hq, hk, hv, causal=causal, name=name("attention"))
        y = self._permute_view(y, (0, 2, 1, 3), name("merge_heads_t"))
        y = self._contiguous_copy(y, name("merge_heads"))
        y = self._op("reshape", [y], (n, length, e), name("merge_heads_view"))
        return self.b.linear(y, e, bias=m.out_proj.bias is not None, name=name("out_proj"))

    def _split_packed(self, packed, parts, name):
        """PyTorch's packed projection: (N, L, parts*E) unflattened to parts x E, made
        contiguous part by part (a copy), then one view per part."""
        n, length, pe = self.b.spec(packed).shape
        e = pe // parts
        r = self._op("reshape", [packed], (n, length, parts, e), name("unflatten"))
        t = self._permute_view(r, (0, 2, 1, 3), name("parts_t"))
        c = self._contiguous_copy(t, name("parts"))
        out = []
        for i in range(parts):
            s = self.b.slice(c, i, i + 1, dim=1, name=name(f"part{i}"))
            out.append(self._op("reshape", [s], (n, length, e), name(f"part{i}_view")))
        return out

    def _explicit_attention(self, q, k, v, causal, dropout_p, name):
        hd = self.b.spec(q).shape[-1]
        q = self.b.scalar(q, scale=1.0 / math.sqrt(hd), name=name("scale"))
        scores = self.b.batched_matmul(q, self._permute_view(k, (0, 1, 3, 2), name("k_t")),
                                       name=name("scores"))
        if causal:
            scores = self._masked_fill(scores, -math.inf, name("mask"))
        p = self.b.softmax(scores, -1, name=name("softmax"))
        if dropout_p > 0:
            p = self.b.dropout(p, dropout_p, name=name("dropout"))
        return self.b.batched_matmul(p, v, name=name("context"))

    def _permute_view(self, x, dims, name):
        shape = self.b.spec(x).shape
        return self._op("permute", [x], tuple(shape[d] for d in dims), name, {"dims": dims})

    def _contiguous_copy(self, x, name):
        op = self.b.graph.op(x)
        return self._op("contiguous", [x], op.out.shape, name,
                        {"dims": op.attrs["dims"], "source_shape": op.in_specs[0].shape})
