"""T5 (Raffel et al. 2020) as Hugging Face's T5ForConditionalGeneration runs it eagerly: an
encoder-decoder of pre-norm blocks. t5_small 60,506,624, t5_base 222,903,552, t5_large
737,668,096 parameters (the count Hugging Face reports for t5-small, t5-base, t5-large).

Two token inputs: the encoder's ids (seq_len) and the decoder's (target_len, the input
`decoder_input_ids`). One table of token embeddings (Hugging Face's `shared`) serves the
encoder, the decoder and, tied, the output layer, which reads the decoder's output scaled by
width^-0.5. Norms are RMS norms without a bias (pow, mean, + eps, rsqrt, product, scale).
Attention has no scaling of q k^T; the scores of the encoder's and the decoder's self-attention
add a learned relative position bias (32 buckets per head, held by each stack's first layer
and added again by every later one: an attention_bias op whose table graph.meta
["shared_params"] maps to the first); the decoder's are causally masked; cross-attention reads
keys and values from the encoder's output, with no bias (Hugging Face adds a tensor of zeros
there, a pass over the scores left out). The MLP is ReLU between two bias-free linear layers.
Dropout (0.1) follows the embeddings, the attention probabilities, the MLP's ReLU, each
residual branch and each stack's final norm. The graph ends at the (batch, target_len,
vocab_size) logits; training adds the loss over every target position.
"""
from __future__ import annotations

from ..builder import GraphBuilder
from ..graph import OpGraph, WorkloadError
from .transformers import _check, _dropout, _rms_norm

RELATIVE_BUCKETS = 32
T5_SMALL = dict(width=512, depth=6, heads=8, d_kv=64, d_ff=2048, name="t5_small")
T5_BASE = dict(width=768, depth=12, heads=12, d_kv=64, d_ff=3072, name="t5_base")
T5_LARGE = dict(width=1024, depth=24, heads=16, d_kv=64, d_ff=4096, name="t5_large")


class _Stack:
    """The builder and the sizes one T5 shares between its encoder and decoder."""

    def __init__(self, b: GraphBuilder, heads: int, d_kv: int, d_ff: int,
                 dropout: float) -> None:
        self.b, self.heads, self.d_kv, self.d_ff, self.dropout = b, heads, d_kv, d_ff, dropout
        self.bias_holder: dict[str, str] = {}   # stack -> its first layer's bias op

    def heads_of(self, x: str) -> str:
        n, s, _ = self.b.spec(x).shape
        return self.b.transpose(self.b.reshape(x, (n, s, self.heads, self.d_kv)), 1, 2)

    def attention(self, x: str, memory: str, stack: str | None, causal: bool) -> str:
        """q from x, k and v from `memory`; the relative bias of `stack` (None: no bias)."""
        b, (n, s, width) = self.b, self.b.spec(x).shape
        q = self.heads_of(b.linear(x, self.heads * self.d_kv, bias=False, name="q"))
        k = self.heads_of(b.linear(memory, self.heads * self.d_kv, bias=False, name="k"))
        v = self.heads_of(b.linear(memory, self.heads * self.d_kv, bias=False, name="v"))
        scores = b.batched_matmul(q, b.transpose(k, -1, -2), name="scores")
        if stack is not None:
            holder = self.bias_holder.get(stack)
            scores = b.op("attention_bias", [scores],
                          params=0 if holder else RELATIVE_BUCKETS * self.heads,
                          name="relative_position_bias", queries=s,
                          keys=b.spec(memory).shape[1],
                          table_shape=(RELATIVE_BUCKETS, self.heads),
                          table_layout="positions_heads", index="constant")
            if holder:
                b.graph.meta.setdefault("shared_params", {})[scores] = holder
            else:
                self.bias_holder[stack] = scores
        if causal:
            scores = b.causal_mask(scores)
        probs = _dropout(b, b.softmax(scores), self.dropout)
        y = b.reshape(b.transpose(b.batched_matmul(probs, v, name="context"), 1, 2),
                      (n, s, self.heads * self.d_kv))
        return b.linear(y, width, bias=False, name="o")

    def residual(self, x: str, layer: int, branch) -> str:
        """x + dropout(branch(rms_norm(x))), in layer.<layer>."""
        with self.b.scope(f"layer.{layer}"):
            h = branch(_rms_norm(self.b, x, "layer_norm"))
            return self.b.add(x, _dropout(self.b, h, self.dropout))

    def feed_forward(self, x: str) -> str:
        b, width = self.b, self.b.spec(x).shape[-1]
        with b.scope("DenseReluDense"):
            h = _dropout(b, b.relu(b.linear(x, self.d_ff, bias=False, name="wi"), name="act"),
                         self.dropout)
            return b.linear(h, width, bias=False, name="wo")


def t5(batch: int = 1, *, width: int = 768, depth: int = 12, heads: int = 12, d_kv: int = 64,
       d_ff: int = 3072, seq_len: int = 512, target_len: int = 128, vocab_size: int = 32128,
       dropout: float = 0.1, dtype_bytes: int = 4, name: str = "t5_base") -> OpGraph:
    """A T5 encoder-decoder of `depth` layers each side (the defaults are t5-base's)."""
    _check(name, width=width, depth=depth, heads=heads, d_kv=d_kv, d_ff=d_ff,
           seq_len=seq_len, target_len=target_len, vocab_size=vocab_size)
    if not 0.0 <= dropout < 1.0:
        raise WorkloadError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
    b = GraphBuilder(name, input_shape=(seq_len,), batch=batch, dtype_bytes=dtype_bytes,
                     token_logits=True)
    t = _Stack(b, heads, d_kv, d_ff, dropout)
    ids = b.input(tokens=vocab_size)
    target = b.input("decoder_input_ids", tokens=vocab_size, shape=(target_len,))
    with b.scope("encoder"):
        table = b.embedding(ids, vocab_size, width, name="embed_tokens")
        x = _dropout(b, table, dropout)
        for i in range(depth):
            with b.scope(f"block.{i}"):
                x = t.residual(x, 0, lambda h: _self(t, h, "encoder", False))
                x = t.residual(x, 1, t.feed_forward)
        memory = _dropout(b, _rms_norm(b, x, "final_layer_norm"), dropout)
    with b.scope("decoder"):
        y = b.op("embedding", [target], (batch, target_len, width), name="embed_tokens",
                 num_embeddings=vocab_size, embedding_dim=width)
        b.graph.meta.setdefault("shared_params", {})[y] = table
        y = _dropout(b, y, dropout)
        for i in range(depth):
            with b.scope(f"block.{i}"):
                y = t.residual(y, 0, lambda h: _self(t, h, "decoder", True))
                y = t.residual(y, 1, lambda h: _cross(t, h, memory))
                y = t.residual(y, 2, t.feed_forward)
        y = _dropout(b, _rms_norm(b, y, "final_layer_norm"), dropout)
    y = b.scalar(y, scale=width ** -0.5, name="scale")   # the tied output layer's rescaling
    b.linear(y, vocab_size, bias=False, name="lm_head", shared_with=table)
    return b.build()


def _self(t: _Stack, h: str, stack: str, causal: bool) -> str:
    with t.b.scope("SelfAttention"):
        return t.attention(h, h, stack, causal)


def _cross(t: _Stack, h: str, memory: str) -> str:
    with t.b.scope("EncDecAttention"):
        return t.attention(h, memory, None, False)
