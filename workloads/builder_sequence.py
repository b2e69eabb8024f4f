"""GraphBuilder methods for sequence models (transformers): token, position and class-token
embeddings, batched matrix products, softmax, the causal mask, fused attention, permutes
that are views until something needs them contiguous, as in PyTorch, and the pieces of
Llama-style blocks (pow, rsqrt and a trailing mean for RMSNorm, the product with a rotary
table, keys and values repeated for grouped-query attention).

    b = GraphBuilder("tiny-lm", input_shape=(128,), batch=8)
    ids = b.input(tokens=1000)                    # (8, 128) token ids
    x = b.position_embedding(b.embedding(ids, 1000, 64), 128)
    q = b.transpose(b.reshape(x, (8, 128, 4, 16)), 1, 2)        # (8, 4, 128, 16), a view
    y = b.attention(q, q, q, causal=True)
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from .errors import ShapeError, WorkloadError

if TYPE_CHECKING:
    from .graph import OpGraph, TensorSpec


def broadcast_batch(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The batch dimensions two matrices' leading dimensions broadcast to (numpy's rule:
    aligned from the right, 1 or equal), or None where they do not."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da != db and 1 not in (da, db):
            return None
        out.append(max(da, db))
    return tuple(reversed(out))


def is_contiguous_permute(shape: Sequence[int], dims: Sequence[int]) -> bool:
    """Whether x.permute(dims) of a contiguous x is still contiguous: the dimensions of size
    above 1 keep their order (moving size-1 dimensions changes no stride that matters)."""
    moved = [d for d in dims if shape[d] != 1]
    return moved == sorted(moved)


class SequenceOps:
    """Mixed into GraphBuilder (workloads/builder.py)."""

    if TYPE_CHECKING:   # what GraphBuilder provides (declared for the type checker only)
        graph: OpGraph
        batch: int

        def spec(self, tensor: str) -> TensorSpec: ...

        def _add(self, kind: str, inputs: Sequence[str], out_shape: Sequence[int],
                 name: str | None, attrs: dict | None = None, params: int = 0,
                 layer: bool = False) -> str: ...

    def embedding(self, ids: str, num_embeddings: int, embedding_dim: int,
                  name: str | None = None) -> str:
        """Rows of a learned (num_embeddings, embedding_dim) table by the ids in `ids` (token
        ids from input(tokens=...)): (..., ) to (..., embedding_dim)."""
        spec = self.spec(ids)
        if not spec.integer:
            raise ShapeError(f"embedding after {ids!r}: needs integer ids (input(tokens=...)), "
                             f"got a float tensor {spec.shape}")
        if num_embeddings < 1 or embedding_dim < 1:
            raise ShapeError(f"embedding after {ids!r}: table {num_embeddings}x{embedding_dim} "
                             "must be at least 1x1")
        return self._add("embedding", [ids], (*spec.shape, embedding_dim), name,
                         dict(num_embeddings=num_embeddings, embedding_dim=embedding_dim),
                         params=num_embeddings * embedding_dim)

    def position_embedding(self, x: str, num_embeddings: int, constant_row: bool = False,
                           name: str | None = None, first_row: int = 0) -> str:
        """x (N, S, D) plus S rows of a learned (num_embeddings, D) table from first_row (the
        first S: GPT-2's wpe, BERT's positions, ViT's pos_embedding; from row 1 past a class
        token's: ViT-MAE's); constant_row: row 0 added everywhere (BERT's token types when
        every token is type 0)."""
        shape = self.spec(x).shape
        if len(shape) != 3:
            raise ShapeError(f"position_embedding after {x!r}: needs (N, S, D), got {shape}")
        if not constant_row and first_row + shape[1] > num_embeddings:
            raise ShapeError(f"position_embedding after {x!r}: {shape[1]} positions from row "
                             f"{first_row} but a table of {num_embeddings}")
        attrs: dict = dict(num_embeddings=num_embeddings)
        if constant_row:
            attrs["constant_row"] = True
        if first_row:
            attrs["first_row"] = first_row
        return self._add("position_embedding", [x], shape, name, attrs,
                         params=num_embeddings * shape[2])

    def learned_queries(self, shape: Sequence[int], name: str | None = None) -> str:
        """A learned (Q, D) table repeated over the batch, (N, Q, D): DETR's object queries
        (`weight.unsqueeze(0).repeat(n, 1, 1)`), a copy reading no input."""
        shape = tuple(int(d) for d in shape)
        if not shape or min(shape) < 1:
            raise ShapeError(f"learned_queries: needs a table of positive sizes, got {shape}")
        return self._add("learned_queries", [], (self.batch, *shape), name,
                         params=math.prod(shape))

    def class_token(self, x: str, name: str | None = None, tokens: int = 1) -> str:
        """Learned tokens put before the sequence: (N, S, D) to (N, S + tokens, D) (ViT's
        class token; DeiT's class and distillation tokens)."""
        n, s, d = self._nsd(x, "class_token")
        attrs = {} if tokens == 1 else {"tokens": int(tokens)}
        return self._add("class_token", [x], (n, s + tokens, d), name, attrs, params=tokens * d)

    def batched_matmul(self, a: str, b: str, name: str | None = None) -> str:
        """torch.matmul of a (..., m, k) and b (..., k, n), the batch dimensions broadcast:
        (..., m, n). Both need two dimensions or more."""
        sa, sb = self.spec(a).shape, self.spec(b).shape
        if len(sa) < 2 or len(sb) < 2 or sa[-1] != sb[-2]:
            raise ShapeError(f"batched_matmul of {a!r} {sa} and {b!r} {sb}: needs (..., m, k) "
                             "and (..., k, n)")
        batch = broadcast_batch(sa[:-2], sb[:-2])
        if batch is None:
            raise ShapeError(f"batched_matmul of {a!r} {sa} and {b!r} {sb}: batch dimensions "
                             "do not broadcast")
        return self._add("batched_matmul", [a, b], (*batch, sa[-2], sb[-1]), name)

    def constant_matmul(self, x: str, out_features: int, name: str | None = None) -> str:
        """x (..., k) @ C (k, out_features) with C a constant matrix (a buffer: no parameters,
        no gradient into it), over x's last dimension."""
        shape = self.spec(x).shape
        if len(shape) < 2:
            raise ShapeError(f"constant_matmul after {x!r}: input {shape} needs a batch and a "
                             "feature dim")
        attrs = dict(in_features=shape[-1], out_features=int(out_features),
                     batch_rows=math.prod(shape[:-1]))
        return self._add("constant_matmul", [x], (*shape[:-1], int(out_features)), name, attrs)

    def take_per_sample(self, x: str, name: str | None = None, rows: int | None = None) -> str:
        """x[torch.arange(N), positions]: one row of dimension 1 of each sample, at a position
        that may differ by sample; (N, L, ...) -> (N, ...). rows=K: K rows of each sample, at
        positions that differ by sample (torch.gather by a per-sample shuffle: ViT-MAE's kept
        patches); (N, L, ...) -> (N, K, ...)."""
        shape = self.spec(x).shape
        if len(shape) < 3:
            raise ShapeError(f"take_per_sample after {x!r}: input {shape} needs (N, L, ...)")
        if rows is None:
            return self._add("take_per_sample", [x], (shape[0], *shape[2:]), name)
        if not 1 <= rows <= shape[1]:
            raise ShapeError(f"take_per_sample after {x!r}: {rows} rows of {shape[1]}")
        return self._add("take_per_sample", [x], (shape[0], int(rows), *shape[2:]), name,
                         {"rows": int(rows)})

    def softmax(self, x: str, dim: int = -1, name: str | None = None) -> str:
        shape = self.spec(x).shape
        if not -len(shape) <= dim < len(shape):
            raise ShapeError(f"softmax after {x!r}: dim {dim} outside shape {shape}")
        return self._add("softmax", [x], shape, name, dict(dim=dim % len(shape)))

    def causal_mask(self, x: str, value: float = -math.inf, name: str | None = None) -> str:
        """x.masked_fill(mask, value) with the causal mask over the last two dimensions (query
        row i sees key columns 0..i), as attention scores are masked in a decoder."""
        shape = self.spec(x).shape
        if len(shape) < 2:
            raise ShapeError(f"causal_mask after {x!r}: needs (..., rows, cols), got {shape}")
        return self._add("masked_fill", [x], shape, name, dict(mask="causal",
                                                               value=float(value)))

    def attention(self, q: str, k: str, v: str, causal: bool = False,
                  name: str | None = None) -> str:
        """F.scaled_dot_product_attention(q, k, v, is_causal=causal), one fused op: q
        (..., Sq, d), k (..., Sk, d), v (..., Sk, dv) to (..., Sq, dv)."""
        sq, sk, sv = (self.spec(t).shape for t in (q, k, v))
        if (len(sq) < 2 or sk[:-2] != sq[:-2] or sv[:-2] != sq[:-2] or sk[-1] != sq[-1]
                or sv[-2] != sk[-2]):
            raise ShapeError(f"attention of q {sq}, k {sk}, v {sv}: needs (..., Sq, d), "
                             "(..., Sk, d) and (..., Sk, dv)")
        return self._add("attention", [q, k, v], (*sq[:-1], sv[-1]), name,
                         dict(causal=bool(causal)))

    def permute(self, x: str, dims: Sequence[int], name: str | None = None) -> str:
        """x.permute(dims): a view with other strides (no copy). A reshape or contiguous() of
        it copies, as in PyTorch."""
        shape = self.spec(x).shape
        dims = tuple(int(d) % len(shape) if -len(shape) <= int(d) < len(shape) else -1
                     for d in dims)
        if sorted(dims) != list(range(len(shape))):
            raise ShapeError(f"permute of {x!r} {shape}: dims {dims} are not a permutation "
                             f"of its {len(shape)} dimensions")
        if dims[0] != 0:
            raise ShapeError(f"permute of {x!r}: the batch must stay first, got dims {dims}")
        return self._add("permute", [x], tuple(shape[d] for d in dims), name, dict(dims=dims))

    def transpose(self, x: str, dim0: int, dim1: int, name: str | None = None) -> str:
        """x.transpose(dim0, dim1), a view (a permute of two dimensions)."""
        rank = len(self.spec(x).shape)
        dims = list(range(rank))
        try:
            dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        except IndexError:
            raise ShapeError(f"transpose of {x!r}: dims {dim0}, {dim1} outside rank "
                             f"{rank}") from None
        return self.permute(x, dims, name)

    def contiguous(self, x: str, name: str | None = None) -> str:
        """x.contiguous(): a copy of a permuted view that is not contiguous, else x itself."""
        op = self.graph.op(x)
        if op.kind != "permute" or is_contiguous_permute(op.in_specs[0].shape,
                                                         op.attrs["dims"]):
            return x
        return self._add("contiguous", [x], op.out.shape, name,
                         dict(dims=op.attrs["dims"], source_shape=op.in_specs[0].shape))

    def pow(self, x: str, exponent: float, name: str | None = None) -> str:
        """x ** exponent, a constant exponent (torch.square is exponent 2)."""
        return self._add("pow", [x], self.spec(x).shape, name, dict(exponent=float(exponent)))

    def rsqrt(self, x: str, name: str | None = None) -> str:
        """torch.rsqrt(x): 1 / sqrt(x)."""
        return self._add("rsqrt", [x], self.spec(x).shape, name)

    def mean(self, x: str, reduced_dims: int = 1, keepdim: bool = False,
             name: str | None = None) -> str:
        """x.mean over its last `reduced_dims` dimensions (x.mean(-1, keepdim=True): an
        RMSNorm's mean square); the batch is never reduced."""
        shape = self.spec(x).shape
        if not 1 <= reduced_dims < len(shape):
            raise ShapeError(f"mean after {x!r}: reduces {reduced_dims} trailing dims of "
                             f"{shape}; at least 1 and not the batch")
        kept = shape[:len(shape) - reduced_dims]
        out = (*kept, *(1,) * reduced_dims) if keepdim else kept
        return self._add("mean", [x], out, name, dict(reduced_dims=reduced_dims,
                                                      keepdim=bool(keepdim)))

    def mul_table(self, x: str, table_shape: Sequence[int], name: str | None = None) -> str:
        """x times a constant table (a buffer, no gradient into it) broadcast over x's
        trailing dimensions: a rotary embedding's cos or sin of shape (S, head_dim). Where x
        has size 1 and the table more, x broadcasts too (timesteps (N, 1) times frequencies
        (F,): an (N, F) outer product)."""
        shape, table = self.spec(x).shape, tuple(int(d) for d in table_shape)
        if len(table) > len(shape) or any(
                t != s and 1 not in (t, s)
                for t, s in zip(reversed(table), reversed(shape), strict=False)):
            raise ShapeError(f"mul_table after {x!r}: table {table} does not broadcast over "
                             f"{shape}")
        if len(table) == len(shape) and table[0] != 1:
            raise ShapeError(f"mul_table after {x!r}: table {table} may not vary over the batch")
        lead = len(shape) - len(table)
        out = (*shape[:lead], *(max(s, t) for s, t in zip(shape[lead:], table, strict=True)))
        return self._add("mul_table", [x], out, name, dict(table_shape=table))

    def repeat_heads(self, x: str, repeats: int, name: str | None = None) -> str:
        """(N, KV, S, D) to (N, KV * repeats, S, D), each head repeated in place (Hugging
        Face's repeat_kv for grouped-query attention): a copy."""
        shape = self.spec(x).shape
        if len(shape) != 4 or repeats < 1:
            raise ShapeError(f"repeat_heads after {x!r}: needs (N, heads, S, D) and repeats "
                             f">= 1, got {shape} and {repeats}")
        if repeats == 1:
            return x
        return self._add("repeat_heads", [x], (shape[0], shape[1] * repeats, *shape[2:]), name,
                         dict(repeats=repeats))

    def _nsd(self, x: str, what: str) -> tuple[int, int, int]:
        shape = self.spec(x).shape
        if len(shape) != 3:
            raise ShapeError(f"{what} after {x!r}: needs (N, S, D), got {shape}")
        n, s, d = shape
        return n, s, d

    def _check_shareable(self, holder: str, shape: tuple[int, int], bias: bool) -> None:
        """A layer may use the weight of `holder` (an embedding or a linear layer) where the
        two have the same shape (GPT-2's output layer and its token table)."""
        h = self.graph.op(holder)
        held = ((h.attrs["num_embeddings"], h.attrs["embedding_dim"]) if h.kind == "embedding"
                else (h.attrs.get("out_features"), h.attrs.get("in_features"))
                if h.kind == "linear" else None)
        if held != tuple(shape) or (bias and h.kind == "embedding"):
            raise WorkloadError(f"a layer of weight {shape}{' with a bias' if bias else ''} "
                                f"cannot share the weight of {holder!r} ({h.kind}, {held})")
