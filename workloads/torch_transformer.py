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
The values that are no ops until an op reads them (masks, gathered tables, expanded
parameters and heads) and the operands they become are in torch_operands.py, a base of
`TransformerLowering`. torch is never imported here.
"""
from __future__ import annotations

import math

from .torch_layers import _Param
from .torch_operands import OperandLowering, _Aux
from .torch_values import _Const


def _sig_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False): ...
def _sig_matmul(input, other): ...
def _sig_softmax(input, dim=None, _stacklevel=3, dtype=None): ...
def _sig_masked_fill(input, mask, value): ...
def _sig_embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
                   scale_grad_by_freq=False, sparse=False): ...
def _sig_mha(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
             average_attn_weights=True, is_causal=False): ...



class TransformerLowering(OperandLowering):
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
            "expand": self._expand, "expand_as": self._expand,
        }
        modules = {
            nn.MultiheadAttention: self._mha_module, nn.Embedding: self._embedding_module,
            nn.TransformerEncoderLayer: self._encoder_layer_module,
            nn.TransformerDecoderLayer: self._decoder_layer_module,
            nn.TransformerEncoder: self._stack_module, nn.TransformerDecoder: self._stack_module,
            nn.Transformer: self._transformer_module,
        }
        return functions, methods, modules

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
            raise self.unsupported("renormalises rows (max_norm); "
                                   "only plain lookups are supported")
        if (rows := self.looked_up_rows(w, a["input"])) is not None:
            return rows
        vocab, dim = w.shape
        out = self.b.embedding(self.tensor(a["input"]), vocab, dim, name=self.name("embedding"))
        self._claim([w], out)
        return out

    # -- modules ---------------------------------------------------------------------------
    def _embedding_module(self, m, node, x):
        if m.max_norm is not None:
            raise self.unsupported("renormalises rows (max_norm); "
                                   "only plain lookups are supported")
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
