"""How torch_import lowers the tables, masks and pieces that models from Hugging Face
transformers and timm add to or cut from their tensors, each onto the IR's kinds:

- a learned (1, C, H, W) table added to a feature map (PiT's position embedding): the
  position_embedding of the map seen as (N, C, H * W), a view; a buffer or a constant made
  while tracing added to a tensor it broadcasts over (the causal mask Hugging Face's eager
  attention adds to its scores): a mask fill, as masks of constants are costed; a constant
  added to a parameter (Gemma's RMSNorm scale `1 + weight`) is the parameter (its D
  additions are not costed);
- a learned (heads, P) table read at a buffer index, `biases[:, idxs]`, added to the scores
  or passed as SDPA's mask (LeViT, EfficientFormer, TinyViT), and a learned (heads, ...)
  table contracted with one-hot lookup buffers by einsum (timm's MaxViT-TF): the
  attention_bias kind;
- the difference of two tensors of one shape (PoolFormer's `pool(x) - x`): the sub kind;
- integer ids computed from the token ids with buffers and constants (RoBERTa's position
  ids): ids from buffers, read off the traced run;
- the four pixels of each 2x2 cell of (N, H, W, C), `x[:, r::2, c::2, :]`, concatenated along
  the channels (Hugging Face's Swin patch merging): as torchvision's patch merging lowers;
- 1-D parameters and buffers concatenated (BEiT's qkv bias, cat(q_bias, zeros, v_bias)): a
  bias the linear layer reads whole and holds the learned pieces of;
- an empty slice (`q[..., rotary_dim:]` where the rotary embedding covers the whole head,
  Phi-3) is nothing, and a cat leaves it out; a (D,) parameter expanded to (N, 1, D) and put
  before the sequence (CLIP's class embedding) is the class token; `x @ self.weight.T`
  (Falcon's linear) is a linear layer;
- `F.scaled_dot_product_attention(..., enable_gqa=True)` with fewer key and value heads than
  query heads, or with one key and value head it broadcasts (multi-query attention): the key
  and value heads repeated (`repeat_heads`, the copy PyTorch's math path
  makes) and one attention op; a learned table gathered as the SDPA mask (T5's relative
  position buckets, BEiT's relative position bias) is PyTorch's math path, the products,
  softmax and an attention_bias op holding the table; another mask computed from a parameter
  is refused, never dropped with its parameters.

`TableLowering` is a mixin of `torch_import._Lowering`, called from torch_import_idioms'
`idiom_value`. torch is never imported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .torch_einsum import parse_einsum
from .torch_layers import _JoinedBias, _Param
from .torch_operands import _Aux, _Gathered
from .torch_state import LoweringState


@dataclass(frozen=True)
class _BiasTable:
    """A learned (heads, P) table read at a constant (Q, K) index: (heads, Q, K) attention
    offsets, until it is added to scores."""
    param: _Param
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Empty:
    """A slice with no elements (x[..., d:] of a dimension of size d): nothing to compute."""
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Transposed:
    """A 2-D parameter read transposed (`self.weight.T`): a weight for x @ W.T."""
    param: _Param


def _sig_baddbmm(input, batch1, batch2, *, beta=1, alpha=1): ...
def _sig_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False): ...


def _broadcasts(small, shape) -> bool:
    """Whether a tensor of shape `small` broadcasts over `shape` (trailing dimensions align)."""
    return len(small) <= len(shape) and all(
        e in (1, d) for e, d in zip(reversed(small), reversed(shape), strict=False))


class TableLowering(LoweringState):
    def _difference(self, x, y):
        """x - y of two tensors of one shape: the sub kind; None for the other cases."""
        if not (isinstance(x, str) and isinstance(y, str)) or \
                self.b.spec(x).shape != self.b.spec(y).shape:
            return None
        return self.b.op("sub", [x, y], name=self.name("sub"))

    def _table_added(self, x, y):
        """x (N, C, ...) plus a learned (1, C, ...) table of its shape (PiT's position
        embedding of a feature map): the position_embedding of the map seen as (N, C, rest),
        a view, reshaped back; x plus a buffer or a constant made while tracing that
        broadcasts over it (Hugging Face's eager attention adds its causal mask so): costed as
        the causal mask's fill, as masks of constants are; None for the other cases (the
        sequence's own table is lowered as such)."""
        x, table = (x, y) if isinstance(y, (_Param, _BiasTable)) else (y, x)
        if isinstance(table, _Param) and table.is_parameter and \
                isinstance(x, (int, float)) and not isinstance(x, bool):
            return table   # Gemma's 1 + weight: still the learned scale (D values, not costed)
        if isinstance(table, _BiasTable) and isinstance(x, str):
            return self._attention_bias(x, table)
        if not (isinstance(x, str) and isinstance(table, _Param)):
            return None
        shape = self.b.spec(x).shape
        if not table.is_parameter:   # a buffer or a tensor made while tracing: a mask
            if any(t not in (1, d) for t, d in zip(reversed(table.shape), reversed(shape),
                                                   strict=False)) or len(table.shape) > len(shape):
                return None
            return self._masked_fill(x, 0.0, self.name("mask"))
        if len(shape) < 4 or table.shape != (1, *shape[1:]):
            return None
        flat = self.b.reshape(x, (shape[0], shape[1], math.prod(shape[2:])),
                              name=self.name("reshape"))
        out = self.b.position_embedding(flat, shape[1], name=self.name("position_embedding"))
        self._claim([table], out)
        return self.b.reshape(out, shape, name=self.name("reshape"))

    def table_lookup(self, equation: str, table, lookup, node):
        """einsum of a learned (heads, ...) table (or of one already so read) with a lookup
        buffer, the heads kept first (timm's MaxViT-TF: 'nhw,ixh->nixw', then 'nixw,jyw->
        nijxy' and a reshape to (heads, Q, K)): the table read at a constant index, a
        _BiasTable. That is exact where the buffer is one-hot along the letters contracted,
        which is checked where its values are held; on the meta device it is assumed (and
        said, graph.meta["guessed_on_meta"]). The one-hot products PyTorch runs for it
        (heads x Q x K x the contracted size, per forward, whatever the batch) are not costed:
        the gather is. None for other einsums."""
        param = table.param if isinstance(table, _BiasTable) else table
        if not (isinstance(param, _Param) and param.is_parameter and
                isinstance(lookup, _Param) and not lookup.is_parameter):
            return None
        shape = table.shape
        parsed = parse_einsum(equation, (len(shape), len(lookup.shape)))
        if isinstance(parsed, str) or not parsed[2] or parsed[2][0] != parsed[0][0] or \
                parsed[0][0] in parsed[1]:
            return None
        a, b, out = parsed
        summed = [c for c in a if c in b and c not in out]
        buffer = self.gm.get_buffer(lookup.target)
        if buffer.is_meta:
            self.guessed.append(f"the lookup {lookup.target!r} taken as one-hot (a gather)")
        else:
            dims = tuple(b.index(c) for c in summed)
            if not (((buffer == 0) | (buffer == 1)).all() and
                    (buffer.sum(dims) == 1).all()):
                raise self.unsupported(f"contracts table {param.target!r} with buffer "
                                       f"{lookup.target!r} ({equation!r}), which is not a "
                                       "one-hot lookup; only a table read at a constant index "
                                       "is supported")
        return _BiasTable(param, self.known_shape(node))

    def _ids_derived(self, node):
        """Integer ids computed from the token ids with buffers and constants (RoBERTa's
        positions: ids.ne(pad).int().cumsum(1) * mask + pad): an _Aux, as ids from buffers
        are, so a table looked up by them reads what their traced values say (positions, or
        row 0); the arithmetic on (N, S) integers is not costed. None otherwise."""
        dtype = getattr(node.meta.get("tensor_meta"), "dtype", None)
        if dtype is None or dtype.is_floating_point or self.input_name is None:
            return None
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        values = [self.env[i] for i in inputs]
        if self.input_name not in values or any(
                isinstance(v, (tuple, list)) or (isinstance(v, str) and v != self.input_name)
                or (isinstance(v, _Param) and v.is_parameter) for v in values):
            return None
        return _Aux(self.known_shape(node))

    def _cat_without_empty(self, node):
        """torch.cat of pieces some of which are empty (Phi-3's rotary embedding over the whole
        head leaves `q[..., rotary_dim:]` empty): the cat of the others; a (D,) parameter
        expanded to (N, 1, D) before a sequence (CLIP's class embedding): the class token.
        None where neither applies."""
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if not isinstance(tensors, (list, tuple)):
            return None
        values = [self.value(t) for t in tensors]
        cells = [(v.source, v.offset) for v in values if getattr(v, "kind", None) == "cell"]
        if len(cells) == len(values) == 4 and len({s for s, _ in cells}) == 1 and \
                [o for _, o in cells] == [(0, 0), (1, 0), (0, 1), (1, 1)] and dim % 4 == 3:
            return self.cells_merged(cells[0][0])   # Hugging Face's Swin patch merging
        if len(values) > 1 and all(isinstance(v, _Param) and len(v.shape) == 1 for v in values) \
                and any(v.is_parameter for v in values):
            return _JoinedBias(tuple(values))   # a bias joined from pieces (BEiT's qkv bias)
        if len(values) == 2 and type(values[0]).__name__ == "_Expanded" and \
                len(values[0].param.shape) == 1 and isinstance(values[1], str):
            shape = self.b.spec(values[1]).shape
            if len(shape) != 3 or dim % 3 != 1 or values[0].param.shape != (shape[2],):
                return None
            out = self.b.class_token(values[1], name=self.name("class_token"))
            self._claim([values[0].param], out)
            return out
        if not any(isinstance(v, _Empty) for v in values):
            return None
        kept = [self.tensor(t) for t, v in zip(tensors, values, strict=True)
                if not isinstance(v, _Empty)]
        if len(kept) == 1:
            return kept[0]
        rank = len(self.b.spec(kept[0]).shape)
        return self.b.concat(kept, dim=dim % rank, name=self.name("concat"))

    def _learned_ancestor(self, arg) -> str | None:
        """A parameter (or a layer holding parameters) that `arg` is computed from, or None."""
        todo, seen = [arg], set()
        while todo:
            n = todo.pop()
            if not isinstance(n, self.torch.fx.Node) or n in seen:
                continue
            seen.add(n)
            if (n.op == "get_attr" and isinstance(self.value(n), _Param) and
                    self.value(n).is_parameter) or (n.op == "call_module" and any(
                        True for _ in self.modules[n.target].parameters())):
                return n.target
            self.torch.fx.node.map_arg((n.args, n.kwargs), todo.append)
        return None

    def _attention_bias(self, x: str, bias: _BiasTable):
        shape = self.b.spec(x).shape
        if len(shape) < 3 or tuple(shape[-3:]) != tuple(bias.shape[-3:]) or \
                any(d != 1 for d in bias.shape[:-3]):
            raise self.unsupported(f"adds a table {bias.param.shape} read as {bias.shape} to "
                                   f"{shape}; only (heads, Q, K) offsets added to (..., heads, "
                                   "Q, K) scores are supported")
        heads, q, k = bias.shape[-3:]
        table = bias.param.shape   # (heads, P), or (heads, ...) seen as (heads, P)
        out = self.b.op("attention_bias", [x], params=math.prod(table),
                        name=self.name("attention_bias"), queries=q, keys=k,
                        table_shape=(table[0], math.prod(table[1:])))
        self._claim([bias.param], out)
        return out

    def _baddbmm(self, node):
        """beta * input + alpha * (batch1 @ batch2) with input a tensor of buffers and
        constants (BLOOM's ALiBi offsets, (N * heads, 1, S), added to its scores): the batched
        product (alpha scales in the GEMM's epilogue) and the offsets added, costed as a mask
        of constants is."""
        a = self.bind(_sig_baddbmm, node)
        out = self.b.batched_matmul(self.tensor(a["batch1"]), self.tensor(a["batch2"]),
                                    name=self.name("baddbmm"))
        offsets = self.value(a["input"])
        if a["beta"] == 0:
            return out
        shape = self.b.spec(out).shape
        constant = isinstance(offsets, _Aux) or \
            isinstance(offsets, _Param) and not offsets.is_parameter
        if constant and any(_broadcasts(o, shape) for o in (
                offsets.shape, self._unfold_shape(offsets.shape))):
            return self._masked_fill(out, 0.0, self.name("offsets"))
        raise self.unsupported(f"adds {offsets!r} to a batched product {shape}; only a tensor "
                               "of buffers and constants that broadcasts over it is supported")

    def _learned_mask(self, x: str, mask: _Param) -> str:
        """Scores (N, heads, Q, K) plus a learned (heads, Q, K) parameter (a bias per head and
        pair of positions, read whole): the attention_bias op holding it, a (heads, Q x K)
        table read at every position."""
        shape, table = self.b.spec(x).shape, mask.shape
        if len(shape) < 3 or len(table) < 3 or tuple(table[-3:]) != tuple(shape[-3:]) or \
                any(d != 1 for d in table[:-3]):
            raise self.unsupported(f"adds parameter {mask.target!r} {table} to scores {shape} "
                                   "as the mask; only a (heads, Q, K) table is supported")
        heads, q, k = table[-3:]
        out = self._op("attention_bias", [x], shape, self.name("attention_bias"),
                       {"queries": q, "keys": k, "table_shape": (heads, q * k),
                        "table_layout": "heads_positions"}, params=heads * q * k)
        self._claim([mask], out)
        return out

    def _sdpa_with_bias(self, a, bias):
        """F.scaled_dot_product_attention with a learned table gathered as its additive mask
        (T5's relative position buckets, BEiT's relative position bias), or a learned
        (heads, Q, K) parameter passed as the mask (_learned_mask): PyTorch runs its
        math path where the mask needs a gradient, so the ops are that path's: q and k^T each
        scaled by sqrt(scale), their product, the bias added (attention_bias, whose gradient
        scatter-adds into the table), softmax, dropout in training, the product with v."""
        if a["is_causal"] or a["enable_gqa"]:
            raise self.unsupported("passes a learned bias as the mask with is_causal or "
                                   "enable_gqa; only a bias alone is supported")
        q, k, v = (self.tensor(a[n]) for n in ("query", "key", "value"))
        head_dim = self.b.spec(q).shape[-1]
        root = math.sqrt(a["scale"] if a["scale"] is not None else head_dim ** -0.5)
        q = self.b.scalar(q, scale=root, name=self.name("q_scale"))
        k_t = self.b.scalar(self.b.transpose(k, -2, -1, name=self.name("k_t")), scale=root,
                            name=self.name("k_scale"))
        product = self.b.batched_matmul(q, k_t, name=self.name("scores"))
        if isinstance(bias, _Gathered):
            scores = self.relative_bias(product, bias)
        elif isinstance(bias, _BiasTable):
            scores = self._attention_bias(product, bias)
        else:
            scores = self._learned_mask(product, bias)
        attn = self.b.softmax(scores, -1, name=self.name("softmax"))
        if a["dropout_p"]:
            attn = self.b.dropout(attn, float(a["dropout_p"]), name=self.name("attn_drop"))
        return self.b.batched_matmul(attn, v, name=self.name("context"))

    def _one_kv_head(self, a) -> bool:
        """Whether q (N, heads, S, D) attends to keys and values of one head that SDPA
        broadcasts over the heads (timm's MobileNetV4 multi-query attention): PyTorch's math
        path expands them and its batched product copies them to every head, as enable_gqa's
        repeat does."""
        shapes = [self.traced_shape(a[n]) or () for n in ("query", "key", "value")]
        if any(len(s) != 4 for s in shapes):
            return False
        q, k, v = shapes
        return q[-3] > 1 and k[-3] == v[-3] == 1 and q[0] == k[0] == v[0]

    def _sdpa_gqa(self, node):
        a = self.bind(_sig_sdpa, node)
        mask = self.value(a["attn_mask"])
        if isinstance(mask, (_Gathered, _BiasTable)) or \
                isinstance(mask, _Param) and mask.is_parameter:
            return self._sdpa_with_bias(a, mask)
        if (learned := self._learned_ancestor(a["attn_mask"])) is not None:
            raise self.unsupported(f"adds a mask computed from parameter {learned!r} to the "
                                   "scores; only masks of buffers and constants and a learned "
                                   "table gathered at a constant index (a relative position "
                                   "bias) are supported")
        if not a["enable_gqa"] and not self._one_kv_head(a):
            return None
        q, k, v = (self.tensor(a[n]) for n in ("query", "key", "value"))
        heads, kv_heads = self.b.spec(q).shape[-3], self.b.spec(k).shape[-3]
        if len(self.b.spec(q).shape) != 4 or heads % kv_heads:
            raise self.unsupported(f"uses enable_gqa with {heads} query heads and {kv_heads} "
                                   "key heads; only (N, heads, S, D) with a whole number of "
                                   "query heads per key head is supported")
        if heads != kv_heads:
            k, v = (self.b.repeat_heads(t, heads // kv_heads, name=self.name("repeat_heads"))
                    for t in (k, v))
        causal = bool(a["is_causal"]) or a["attn_mask"] is not None
        return self.b.attention(q, k, v, causal=causal, name=self.name("attention"))
