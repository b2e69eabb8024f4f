"""Transformers built without PyTorch: ViT (Dosovitskiy et al. 2021), GPT-2 (Radford et al.
2019), BERT (Devlin et al. 2019) and Llama decoders (Touvron et al. 2023; Mistral 7B, Jiang et
al. 2023, is one with a sliding window), op names following the module paths of the reference
implementations (torchvision's VisionTransformer, Hugging Face's GPT2LMHeadModel,
BertForSequenceClassification and LlamaForCausalLM).

Parameters (exact, counted as PyTorch counts them):
    vit_b_16   86,567,656   torchvision vit_b_16 (1000 classes)
    vit_l_16  304,326,632   torchvision vit_l_16 (1000 classes)
    vit_b_32   88,224,232   torchvision vit_b_32; vit_l_32 306,535,400; vit_h_14 632,045,800
                            (at 224x224: 16 x 16 patches of 14 pixels)
    vit_s_16   22,050,664   ViT-S/16 (384 wide, 6 heads; timm's vit_small_patch16_224)
    vit_ti_16   5,717,416   ViT-Ti/16 (192 wide, 3 heads; timm's vit_tiny_patch16_224)
    gpt2      124,439,808   GPT-2 small, the output layer tied to the token embedding
    gpt2_medium 354,823,168 GPT-2 medium (355M), tied likewise
    gpt2_large 774,030,080  GPT-2 large (774M), tied likewise
    gpt2_xl 1,557,611,200   GPT-2 XL (1.5B), tied likewise
    gpt3_175b 174,604,259,328  GPT-3 175B: GPT-2's layout, 96 layers, 12288 wide, 96 heads,
                            2048 positions, tied likewise (the paper's "175.0B")
    bert_base 109,482,240   BertModel (embeddings, 12 layers, pooler), plus the classifier
                            (768 x num_classes + num_classes)
    bert_large 335,141,888  BertModel of BERT-large (24 layers, 1024 wide, 16 heads), plus
                            the classifier (1024 x num_classes + num_classes)
    tinyllama_1b 1,100,048,384  TinyLlama-1.1B (22 layers, 2048 wide, 32 heads, 4 key/value
                            heads, SwiGLU 5632, vocabulary 32000, untied output layer)
    llama2_7b 6,738,415,616  Llama 2 7B (32 layers, 4096 wide, 32 heads, SwiGLU 11008,
                            vocabulary 32000, untied output layer)
    llama2_13b 13,015,864,320  Llama 2 13B (40 layers, 5120 wide, 40 heads, SwiGLU 13824)
    llama2_70b 68,976,648,192  Llama 2 70B (80 layers, 8192 wide, 64 heads, 8 key/value
                            heads, SwiGLU 28672)
    llama3_8b 8,030,261,248  Llama 3 8B (32 layers, 4096 wide, 32 heads, 8 key/value heads,
                            SwiGLU 14336, vocabulary 128256)
    llama3_1_8b             Llama 3.1 8B: Llama 3 8B's sizes (its longer rotary context costs
                            nothing more)
    llama3_70b 70,553,706,496  Llama 3 70B (Llama 2 70B's layers, vocabulary 128256)
    llama3_1_405b 405,853,388,800  Llama 3.1 405B (126 layers, 16384 wide, 128 heads, 8
                            key/value heads, SwiGLU 53248, vocabulary 128256)
    mistral_7b 7,241,732,096  Mistral 7B v0.1 (Llama 3 8B's sizes, vocabulary 32000)

Attention is one fused op (F.scaled_dot_product_attention, which torchvision's ViT and the
Hugging Face models call by default) or, with attention="naive", the products, scaling,
causal mask, softmax and dropout written out. Dropout (the option, the published configs'
0.1 for GPT-2 and BERT, 0 for ViT) follows the embeddings, each residual branch and, in the
naive form only, the attention probabilities: the fused op runs without attention dropout.
GPT-2's loss is over every position of its (batch, seq_len, vocab) logits; BERT is a
sequence classifier on its pooled first token (num_classes, 2 by default).

Each block's linear layers that Megatron-LM splits pair up in graph.meta[TP_PAIRS_META]
(_mark_tp_pair): the column-parallel ones (attention's query, key and value projections; the
MLP's up and gate projections) and the row-parallel one that takes their heads or features
back (the attention's output projection; the MLP's down projection); a language model's token
embedding and output layer, which Megatron splits by vocabulary, in graph.meta[TP_VOCAB_META].
The tensor-parallel policy reads them; nothing else does.
"""
from __future__ import annotations

import math

from ..builder import GraphBuilder
from ..graph import OpGraph, WorkloadError
from ._base import check_classes

ATTENTION_FORMS = ("fused", "naive")
# graph.meta key: the Megatron-style pairs of split linear layers (_mark_tp_pair)
TP_PAIRS_META = "tensor_parallel_pairs"
# graph.meta key: a language model's token embedding and output layer, which Megatron splits
# by vocabulary ({"embedding": name, "output": name})
TP_VOCAB_META = "tensor_parallel_vocab"
# the sizes each zoo name sets (NetworkInfo.fixed); the other options stay the user's
VIT_B_16 = dict(width=768, depth=12, heads=12, mlp=3072, name="vit_b_16")
VIT_S_16 = dict(width=384, depth=12, heads=6, mlp=1536, name="vit_s_16")
VIT_TI_16 = dict(width=192, depth=12, heads=3, mlp=768, name="vit_ti_16")
VIT_L_16 = dict(width=1024, depth=24, heads=16, mlp=4096, name="vit_l_16")
VIT_B_32 = dict(VIT_B_16, patch=32, name="vit_b_32")
VIT_L_32 = dict(VIT_L_16, patch=32, name="vit_l_32")
VIT_H_14 = dict(width=1280, depth=32, heads=16, mlp=5120, patch=14, name="vit_h_14")
GPT2_MEDIUM = dict(width=1024, depth=24, heads=16, name="gpt2_medium")
GPT2_LARGE = dict(width=1280, depth=36, heads=20, name="gpt2_large")
GPT2_XL = dict(width=1600, depth=48, heads=25, name="gpt2_xl")
# GPT-3 175B (Brown et al. 2020, Table 2.1) with dense attention in every layer, as MLPerf's
# Megatron reference trains it (the paper alternates dense and banded sparse layers)
GPT3_175B = dict(width=12288, depth=96, heads=96, max_positions=2048, name="gpt3_175b")
BERT_LARGE = dict(width=1024, depth=24, heads=16, name="bert_large")
# published configurations (the models' config.json); vocabulary and sequence stay options
TINYLLAMA_1B = dict(layers=22, hidden=2048, heads=32, kv_heads=4, intermediate=5632,
                    name="tinyllama_1b")
LLAMA2_7B = dict(layers=32, hidden=4096, heads=32, kv_heads=None, intermediate=11008,
                 name="llama2_7b")
LLAMA2_13B = dict(layers=40, hidden=5120, heads=40, kv_heads=None, intermediate=13824,
                  name="llama2_13b")
LLAMA2_70B = dict(layers=80, hidden=8192, heads=64, kv_heads=8, intermediate=28672,
                  name="llama2_70b")
LLAMA3_8B = dict(layers=32, hidden=4096, heads=32, kv_heads=8, intermediate=14336,
                 name="llama3_8b")
LLAMA3_70B = dict(LLAMA2_70B, name="llama3_70b")   # Llama 2 70B's layers, Llama 3's vocabulary
LLAMA3_1_405B = dict(layers=126, hidden=16384, heads=128, kv_heads=8, intermediate=53248,
                     name="llama3_1_405b")
# Mistral 7B v0.1 is a Llama decoder with Llama 3's sizes at a 32000-token vocabulary, and
# each query sees the 4096 keys before it (sliding_window, see llama)
MISTRAL_7B = dict(LLAMA3_8B, sliding_window=4096, name="mistral_7b")


def vit(batch: int = 1, *, width: int, depth: int, heads: int, mlp: int, patch: int = 16,
        num_classes: int = 1000, input_size: int = 224, dropout: float = 0.0,
        attention: str = "fused", dtype_bytes: int = 4, name: str = "vit") -> OpGraph:
    """A Vision Transformer as torchvision builds it: a patch convolution, the class token,
    learned positions, pre-norm encoder blocks, a layer norm and a linear head on the class
    token."""
    check_classes(num_classes)
    _check(name, width=width, depth=depth, heads=heads, mlp=mlp, patch=patch,
           input_size=input_size)
    if input_size % patch:
        raise WorkloadError(f"{name}: input_size {input_size} is not a multiple of the patch "
                            f"{patch}")
    grid = input_size // patch
    b = GraphBuilder(name, input_shape=(3, input_size, input_size), batch=batch,
                     dtype_bytes=dtype_bytes)
    x = b.conv2d(b.input(), width, patch, stride=patch, bias=True, name="conv_proj")
    x = b.permute(b.reshape(x, (batch, width, grid * grid)), (0, 2, 1))   # (N, S, D), a view
    x = b.class_token(x, name="class_token")
    with b.scope("encoder"):
        x = _dropout(b, b.position_embedding(x, grid * grid + 1, name="pos_embedding"),
                     dropout)
        for i in range(depth):
            with b.scope(f"layers.encoder_layer_{i}"):
                x = _pre_norm_block(b, x, heads, mlp, dropout, attention, causal=False,
                                    gelu="none", attn="self_attention", fc=("mlp.0", "mlp.3"),
                                    qkv=("in_proj", "out_proj"), mlp_dropout=True)
        x = b.layernorm(x, (width,), name="ln")
    x = b.reshape(b.slice(x, 0, 1, dim=1), (batch, width))    # the class token's output
    b.linear(x, num_classes, name="heads.head")
    return b.build()


def gpt2(batch: int = 1, *, width: int = 768, depth: int = 12, heads: int = 12,
         seq_len: int = 1024, vocab_size: int = 50257, max_positions: int = 1024,
         dropout: float = 0.1, attention: str = "fused", dtype_bytes: int = 4,
         name: str = "gpt2") -> OpGraph:
    """A GPT-2 decoder: token and position embeddings, pre-norm causal blocks (GELU with
    the tanh approximation), a final layer norm and the output layer, which uses the token
    embedding's weight (tied, counted once). The graph ends at (batch, seq_len, vocab_size)
    logits; training adds the loss over every position."""
    _check(name, width=width, depth=depth, heads=heads, seq_len=seq_len,
           vocab_size=vocab_size, max_positions=max_positions)
    if seq_len > max_positions:
        raise WorkloadError(f"{name}: seq_len {seq_len} exceeds the {max_positions} positions")
    b = GraphBuilder(name, input_shape=(seq_len,), batch=batch, dtype_bytes=dtype_bytes,
                     token_logits=True)
    with b.scope("transformer"):
        x = b.embedding(b.input(tokens=vocab_size), vocab_size, width, name="wte")
        x = _dropout(b, b.position_embedding(x, max_positions, name="wpe"), dropout)
        for i in range(depth):
            with b.scope(f"h.{i}"):
                x = _pre_norm_block(b, x, heads, 4 * width, dropout, attention, causal=True,
                                    gelu="tanh", attn="attn", fc=("mlp.c_fc", "mlp.c_proj"),
                                    qkv=("c_attn", "c_proj"))
        x = b.layernorm(x, (width,), name="ln_f")
    head = b.linear(x, vocab_size, bias=False, name="lm_head", shared_with="transformer.wte")
    b.graph.meta[TP_VOCAB_META] = {"embedding": "transformer.wte", "output": head}
    return b.build()


def bert(batch: int = 1, *, width: int = 768, depth: int = 12, heads: int = 12,
         seq_len: int = 128, vocab_size: int = 30522, num_classes: int = 2,
         dropout: float = 0.1, attention: str = "fused", dtype_bytes: int = 4,
         name: str = "bert_base") -> OpGraph:
    """BERT as a sequence classifier: word, position (512) and token-type embeddings
    (every token of type 0), post-norm encoder layers (MLP 4 x width), the pooler (a tanh
    linear layer on the first token) and a linear classifier. The defaults are BERT-base."""
    max_positions = 512
    check_classes(num_classes)
    _check(name, width=width, depth=depth, heads=heads, seq_len=seq_len,
           vocab_size=vocab_size)
    if seq_len > max_positions:
        raise WorkloadError(f"{name}: seq_len {seq_len} exceeds the {max_positions} "
                            "positions")
    b = GraphBuilder(name, input_shape=(seq_len,), batch=batch, dtype_bytes=dtype_bytes)
    with b.scope("bert"):
        with b.scope("embeddings"):
            x = b.embedding(b.input(tokens=vocab_size), vocab_size, width,
                            name="word_embeddings")
            x = b.position_embedding(x, 2, constant_row=True, name="token_type_embeddings")
            x = b.position_embedding(x, max_positions, name="position_embeddings")
            x = _dropout(b, b.layernorm(x, (width,), name="LayerNorm"), dropout)
        for i in range(depth):
            with b.scope(f"encoder.layer.{i}"):
                x = _post_norm_block(b, x, heads, 4 * width, dropout, attention)
        first = b.reshape(b.slice(x, 0, 1, dim=1), (batch, width))
        pooled = b.activation(b.linear(first, width, name="pooler.dense"), "tanh",
                              name="pooler.activation")
    b.linear(_dropout(b, pooled, dropout), num_classes, name="classifier")
    return b.build()


bert_base = bert   # BERT-base's sizes are bert's defaults


def llama(batch: int = 1, *, layers: int = 22, hidden: int = 2048, heads: int = 32,
          kv_heads: int | None = 4, intermediate: int = 5632, vocab_size: int = 32000,
          seq_len: int = 2048, attention: str = "fused", dtype_bytes: int = 4,
          sliding_window: int | None = None, name: str = "llama") -> OpGraph:
    """A Llama decoder as Hugging Face's LlamaForCausalLM runs it: the token embedding,
    pre-norm blocks (RMSNorm as pow, mean, + eps, rsqrt, the product and the learned scale;
    rotary embeddings on q and k as q * cos + rotate_half(q) * sin with constant tables;
    grouped-query attention, kv_heads key/value heads repeated for the queries; a SwiGLU MLP),
    the final RMSNorm and an untied output layer; no biases, no dropout. kv_heads None is
    one key/value head per query head. The graph ends at (batch, seq_len, vocab_size)
    logits. A `sliding_window` (Mistral's) limits each query to that many keys; the fused
    attention op counts every key before a query, which is the window's work only up to
    seq_len = sliding_window, so a longer sequence is refused rather than overcounted."""
    kv_heads = heads if kv_heads is None else kv_heads
    _check(name, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
           intermediate=intermediate, vocab_size=vocab_size, seq_len=seq_len,
           **({} if sliding_window is None else {"sliding_window": sliding_window}))
    if sliding_window is not None and seq_len > sliding_window:
        raise WorkloadError(f"{name}: seq_len {seq_len} is past the {sliding_window}-token "
                            f"sliding window, which dnnsim's attention does not model (it "
                            f"would count every earlier key); use seq_len <= {sliding_window}")
    if hidden % heads or heads % kv_heads:
        raise WorkloadError(f"{name}: heads {heads} must divide hidden {hidden}, and kv_heads "
                            f"{kv_heads} must divide heads")
    b = GraphBuilder(name, input_shape=(seq_len,), batch=batch, dtype_bytes=dtype_bytes,
                     token_logits=True)
    with b.scope("model"):
        x = b.embedding(b.input(tokens=vocab_size), vocab_size, hidden, name="embed_tokens")
        tokens = x
        for i in range(layers):
            with b.scope(f"layers.{i}"):
                h = _rms_norm(b, x, "input_layernorm")
                with b.scope("self_attn"):
                    h = _rotary_attention(b, h, heads, kv_heads, attention)
                x = b.add(x, h)
                h = _rms_norm(b, x, "post_attention_layernorm")
                with b.scope("mlp"):
                    gate_proj = b.linear(h, intermediate, bias=False, name="gate_proj")
                    gate = b.activation(gate_proj, "silu")
                    up = b.linear(h, intermediate, bias=False, name="up_proj")
                    h = b.mul(gate, up)
                    h = b.linear(h, hidden, bias=False, name="down_proj")
                    _mark_tp_pair(b, [gate_proj, up], h)
                x = b.add(x, h)
        x = _rms_norm(b, x, "norm")
    head = b.linear(x, vocab_size, bias=False, name="lm_head")
    b.graph.meta[TP_VOCAB_META] = {"embedding": tokens, "output": head}
    return b.build()


# -- blocks ----------------------------------------------------------------------------------
def _rms_norm(b: GraphBuilder, x: str, name: str, eps: float = 1e-6) -> str:
    """weight * (x * rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)), op by op as written."""
    width = b.spec(x).shape[-1]
    with b.scope(name):
        r = b.rsqrt(b.scalar(b.mean(b.pow(x, 2.0), 1, keepdim=True), shift=eps))
        return b.op("layer_scale", [b.mul(x, r)], params=width, param_shape=(width,))


def _rotary(b: GraphBuilder, x: str) -> str:
    """x * cos + rotate_half(x) * sin, the (seq, head_dim) tables constant buffers;
    rotate_half is cat(-x2, x1) of x's halves along the head dimension."""
    *_, s, hd = b.spec(x).shape
    with_cos = b.mul_table(x, (s, hd))
    half = [b.slice(x, 0, hd // 2, dim=3), b.slice(x, hd // 2, hd, dim=3)]
    rotated = b.concat([b.scalar(half[1], scale=-1.0), half[0]], dim=3)
    return b.add(with_cos, b.mul_table(rotated, (s, hd)))


def _rotary_attention(b: GraphBuilder, x: str, heads: int, kv_heads: int,
                      attention: str) -> str:
    """Llama's attention: q, k, v projections (k and v for kv_heads heads), rotary q and k,
    k and v repeated to the query heads, causal attention, o_proj."""
    if attention not in ATTENTION_FORMS:
        raise WorkloadError(f"attention must be one of {', '.join(ATTENTION_FORMS)}, "
                            f"got {attention!r}")
    n, s, width = b.spec(x).shape
    hd = width // heads
    columns = [b.linear(x, h * hd, bias=False, name=f"{p}_proj")
               for p, h in (("q", heads), ("k", kv_heads), ("v", kv_heads))]
    q, k, v = (b.transpose(b.reshape(t, (n, s, h, hd)), 1, 2)
               for t, h in zip(columns, (heads, kv_heads, kv_heads), strict=True))
    q, k = _rotary(b, q), _rotary(b, k)
    k, v = (b.repeat_heads(t, heads // kv_heads) for t in (k, v))
    if attention == "fused":
        y = b.attention(q, k, v, causal=True)
    else:
        scores = b.scalar(b.batched_matmul(q, b.transpose(k, -1, -2)), 1.0 / math.sqrt(hd))
        y = b.batched_matmul(b.softmax(b.causal_mask(scores)), v)
    y = b.reshape(b.transpose(y, 1, 2), (n, s, width))    # contiguous: a copy
    out = b.linear(y, width, bias=False, name="o_proj")
    _mark_tp_pair(b, columns, out, heads=kv_heads)
    return out



def _pre_norm_block(b: GraphBuilder, x: str, heads: int, mlp: int, dropout: float,
                    attention: str, *, causal: bool, gelu: str, attn: str,
                    fc: tuple[str, str], qkv: tuple[str, str],
                    mlp_dropout: bool = False) -> str:
    """x + attention(ln_1(x)), then + mlp(ln_2(x)) (GPT-2, ViT; ViT's MLP has a dropout
    after its GELU too)."""
    width = b.spec(x).shape[-1]
    h = b.layernorm(x, (width,), name="ln_1")
    with b.scope(attn):
        h = _self_attention(b, h, heads, dropout, attention, causal, *qkv)
    x = b.add(x, _dropout(b, h, dropout))
    h = b.layernorm(x, (width,), name="ln_2")
    up = b.linear(h, mlp, name=fc[0])
    h = b.activation(up, "gelu", approximate=gelu)
    h = _dropout(b, h, dropout if mlp_dropout else 0.0)
    down = b.linear(h, width, name=fc[1])
    _mark_tp_pair(b, [up], down)
    return b.add(x, _dropout(b, down, dropout))


def _post_norm_block(b: GraphBuilder, x: str, heads: int, mlp: int, dropout: float,
                     attention: str) -> str:
    """ln(x + attention(x)), then ln(x + mlp(x)) (BERT)."""
    width = b.spec(x).shape[-1]
    with b.scope("attention"):
        with b.scope("self"):
            h, columns = _self_attention(b, x, heads, dropout, attention, False,
                                         with_columns=True)
        proj = b.linear(h, width, name="output.dense")
        _mark_tp_pair(b, columns, proj, heads=heads)
        h = _dropout(b, proj, dropout)
        x = b.layernorm(b.add(h, x), (width,), name="output.LayerNorm")
    up = b.linear(x, mlp, name="intermediate.dense")
    h = b.activation(up, "gelu")
    down = b.linear(h, width, name="output.dense")
    _mark_tp_pair(b, [up], down)
    h = _dropout(b, down, dropout)
    return b.layernorm(b.add(h, x), (width,), name="output.LayerNorm")


def _self_attention(b: GraphBuilder, x: str, heads: int, dropout: float, attention: str,
                    causal: bool, qkv: str | None = None, proj: str | None = None, *,
                    with_columns: bool = False):
    """Multi-head self-attention of x (N, S, D): the projections (one packed layer named
    `qkv`, or BERT's query, key and value), heads split as views, attention, heads merged (a
    copy), and the output projection `proj` (BERT makes its own: with_columns returns the
    projections' names beside the output, for it to pair them with its own)."""
    if attention not in ATTENTION_FORMS:
        raise WorkloadError(f"attention must be one of {', '.join(ATTENTION_FORMS)}, "
                            f"got {attention!r}")
    n, s, width = b.spec(x).shape
    if width % heads:
        raise WorkloadError(f"{heads} heads do not divide the width {width}")
    hd = width // heads
    if qkv is not None:
        packed = b.linear(x, 3 * width, name=qkv)
        columns = [packed]
        parts = [b.slice(packed, i * width, (i + 1) * width, dim=2) for i in range(3)]
    else:
        parts = columns = [b.linear(x, width, name=p) for p in ("query", "key", "value")]
    q, k, v = (b.transpose(b.reshape(t, (n, s, heads, hd)), 1, 2) for t in parts)
    if attention == "fused":
        y = b.attention(q, k, v, causal=causal)
    else:
        scores = b.scalar(b.batched_matmul(q, b.transpose(k, -1, -2)), 1.0 / math.sqrt(hd))
        if causal:
            scores = b.causal_mask(scores)
        y = b.batched_matmul(_dropout(b, b.softmax(scores), dropout), v)
    y = b.reshape(b.transpose(y, 1, 2), (n, s, width))    # contiguous: a copy
    if with_columns:
        return y, columns
    if proj is None:
        return y
    out = b.linear(y, width, name=proj)
    _mark_tp_pair(b, columns, out, heads=heads)
    return out


def _mark_tp_pair(b: GraphBuilder, columns: list[str], row: str,
                  heads: int | None = None) -> None:
    """Record that Megatron-LM splits the linear layers `columns` by their outputs and `row`
    by its inputs (TP_PAIRS_META); `heads`: the attention's key/value heads, which the
    ranks share out whole (None for an MLP, split by features)."""
    pair = {"columns": list(columns), "row": row, "heads": heads}
    b.graph.meta.setdefault(TP_PAIRS_META, []).append(pair)


def _dropout(b: GraphBuilder, x: str, p: float) -> str:
    return b.dropout(x, p) if p else x


def _check(name: str, **sizes) -> None:
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise WorkloadError(f"{name}: {key} must be an integer >= 1, got {value!r}")
