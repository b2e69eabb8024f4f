"""Public model styles written in plain PyTorch as their reference implementations write them
(no transformers package): BERT as Hugging Face's BertForSequenceClassification (module
names, buffers of position and token-type ids sliced to the sequence, q/k/v as separate
Linear layers with view/permute, eager or SDPA attention), and a Llama-style decoder block
(RMSNorm as pow/mean/rsqrt, rotary embeddings from cos and sin buffers or computed from position
ids, repeat_kv for grouped-query attention, SwiGLU). Sizes that torch.fx cannot read from
the input are fixed when built."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, width: int, positions: int, types: int, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, width, padding_idx=0)
        self.position_embeddings = nn.Embedding(positions, width)
        self.token_type_embeddings = nn.Embedding(types, width)
        self.LayerNorm = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("position_ids", torch.arange(positions).expand((1, -1)),
                             persistent=False)
        self.register_buffer("token_type_ids", torch.zeros((1, positions), dtype=torch.long),
                             persistent=False)

    def forward(self, input_ids):
        input_shape = input_ids.size()
        seq_length = input_shape[1]
        position_ids = self.position_ids[:, 0:seq_length]
        buffered_token_type_ids = self.token_type_ids[:, :seq_length]
        token_type_ids = buffered_token_type_ids.expand(input_shape[0], seq_length)
        inputs_embeds = self.word_embeddings(input_ids)
        token_type_embeddings = self.token_type_embeddings(token_type_ids)
        embeddings = inputs_embeds + token_type_embeddings
        position_embeddings = self.position_embeddings(position_ids)
        embeddings += position_embeddings
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)


class BertSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, sdpa: bool):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = heads, width // heads
        self.all_head_size = width
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.dropout = nn.Dropout(dropout)
        self.dropout_prob, self.sdpa = dropout, sdpa

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states):
        mixed_query_layer = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query_layer)
        if self.sdpa:
            context_layer = F.scaled_dot_product_attention(
                query_layer, key_layer, value_layer,
                dropout_p=self.dropout_prob if self.training else 0.0)
        else:
            attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
            attention_scores = attention_scores / math.sqrt(self.attention_head_size)
            attention_probs = nn.functional.softmax(attention_scores, dim=-1)
            attention_probs = self.dropout(attention_probs)
            context_layer = torch.matmul(attention_probs, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
        return context_layer.view(new_context_layer_shape)


class BertSelfOutput(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.LayerNorm = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(hidden_states + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, sdpa: bool):
        super().__init__()
        self.self = BertSelfAttention(width, heads, dropout, sdpa)
        self.output = BertSelfOutput(width, dropout)

    def forward(self, hidden_states):
        return self.output(self.self(hidden_states), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, width: int, mlp: int):
        super().__init__()
        self.dense = nn.Linear(width, mlp)

    def forward(self, hidden_states):
        return F.gelu(self.dense(hidden_states))     # HF's ACT2FN["gelu"]


class BertOutput(BertSelfOutput):
    def __init__(self, width: int, mlp: int, dropout: float):
        super().__init__(width, dropout)
        self.dense = nn.Linear(mlp, width)


class BertLayer(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int, dropout: float, sdpa: bool):
        super().__init__()
        self.attention = BertAttention(width, heads, dropout, sdpa)
        self.intermediate = BertIntermediate(width, mlp)
        self.output = BertOutput(width, mlp, dropout)

    def forward(self, hidden_states):
        attention_output = self.attention(hidden_states)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, depth: int, *args):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(*args) for _ in range(depth))

    def forward(self, hidden_states):
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        first_token_tensor = hidden_states[:, 0]
        return self.activation(self.dense(first_token_tensor))


class BertModel(nn.Module):
    def __init__(self, vocab, width, depth, heads, mlp, positions, types, dropout, sdpa):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, width, positions, types, dropout)
        self.encoder = BertEncoder(depth, width, heads, mlp, dropout, sdpa)
        self.pooler = BertPooler(width)

    def forward(self, input_ids):
        return self.pooler(self.encoder(self.embeddings(input_ids)))


class BertForSequenceClassification(nn.Module):
    """BERT-base by default (no attention mask: every token is attended)."""

    def __init__(self, vocab=30522, width=768, depth=12, heads=12, mlp=3072, positions=512,
                 types=2, dropout=0.1, num_labels=2, sdpa=False):
        super().__init__()
        self.bert = BertModel(vocab, width, depth, heads, mlp, positions, types, dropout, sdpa)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_labels)

    def forward(self, input_ids):
        return self.classifier(self.dropout(self.bert(input_ids)))


class LlamaRMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(hidden_states, n_rep: int):
    """Hugging Face's repeat_kv: (batch, kv_heads, seq, head_dim) to (batch, kv_heads * n_rep,
    seq, head_dim)."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep,
                                                           slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class LlamaRotaryEmbedding(nn.Module):
    """cos and sin computed in the forward from position ids (Hugging Face's newer form):
    the inverse frequencies (a buffer) times the positions, each (batch, seq, head_dim)."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(
            position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


class LlamaAttention(nn.Module):
    """Rotary position embeddings (cos and sin tables in buffers) on q and k, keys and values
    of kv_heads heads repeated for the query heads (grouped-query attention), causal SDPA."""

    def __init__(self, width: int, heads: int, positions: int, base: float = 10000.0,
                 kv_heads: int | None = None, rotary_from_positions: bool = False,
                 eager: bool = False):
        super().__init__()
        self.eager = eager
        self.rotary_emb = (LlamaRotaryEmbedding(width // heads, base)
                           if rotary_from_positions else None)
        self.num_heads, self.head_dim = heads, width // heads
        self.num_key_value_heads = kv_heads or heads
        kv_width = self.num_key_value_heads * self.head_dim
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, kv_width, bias=False)
        self.v_proj = nn.Linear(width, kv_width, bias=False)
        self.o_proj = nn.Linear(width, width, bias=False)
        inv_freq = 1.0 / base ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim)
        freqs = torch.outer(torch.arange(positions).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, hidden_states):
        bsz, q_len = hidden_states.size(0), hidden_states.size(1)
        shape = (bsz, q_len, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        if self.rotary_emb is None:
            cos, sin = self.cos_cached[:q_len], self.sin_cached[:q_len]
        else:
            position_ids = torch.arange(q_len, device=hidden_states.device).unsqueeze(0)
            cos, sin = self.rotary_emb(v, position_ids)
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)     # over the heads
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        n_rep = self.num_heads // self.num_key_value_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        if not self.eager:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(out.transpose(1, 2).reshape(bsz, q_len, -1))
        # Hugging Face's eager_attention_forward: scaled scores plus the causal mask (made of
        # constants), softmax in float32, cast back
        causal_mask = torch.full((q_len, q_len), float("-inf"),
                                 device=hidden_states.device).triu(1)
        attn_weights = torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5
        attn_weights = attn_weights + causal_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
        attn_output = torch.matmul(attn_weights, v).transpose(1, 2).contiguous()
        return self.o_proj(attn_output.reshape(bsz, q_len, -1))


class LlamaMLP(nn.Module):
    def __init__(self, width: int, mlp: int):
        super().__init__()
        self.gate_proj = nn.Linear(width, mlp, bias=False)
        self.up_proj = nn.Linear(width, mlp, bias=False)
        self.down_proj = nn.Linear(mlp, width, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))   # SwiGLU


class LlamaDecoderLayer(nn.Module):
    def __init__(self, width: int = 64, heads: int = 4, mlp: int = 172, positions: int = 128,
                 kv_heads: int | None = None, rotary_from_positions: bool = False,
                 eager: bool = False):
        super().__init__()
        self.self_attn = LlamaAttention(width, heads, positions, kv_heads=kv_heads,
                                        rotary_from_positions=rotary_from_positions,
                                        eager=eager)
        self.mlp = LlamaMLP(width, mlp)
        self.input_layernorm = LlamaRMSNorm(width)
        self.post_attention_layernorm = LlamaRMSNorm(width)

    def forward(self, hidden_states):
        hidden_states = hidden_states + self.self_attn(self.input_layernorm(hidden_states))
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class LlamaModel(nn.Module):
    def __init__(self, vocab, width, depth, heads, kv_heads, mlp, positions, eager=False):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, width)
        self.layers = nn.ModuleList(LlamaDecoderLayer(width, heads, mlp, positions, kv_heads,
                                                      eager=eager)
                                    for _ in range(depth))
        self.norm = LlamaRMSNorm(width)

    def forward(self, input_ids):
        hidden_states = self.embed_tokens(input_ids)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(hidden_states)
        return self.norm(hidden_states)


class LlamaForCausalLM(nn.Module):
    """A Llama decoder with its (untied) output layer; small sizes by default; eager: the
    attention written out as Hugging Face's eager path, else SDPA."""

    def __init__(self, vocab=1000, width=64, depth=2, heads=4, kv_heads=2, mlp=172,
                 positions=128, eager=False):
        super().__init__()
        self.model = LlamaModel(vocab, width, depth, heads, kv_heads, mlp, positions, eager)
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, input_ids):
        return self.lm_head(self.model(input_ids))


class T5Attention(nn.Module):
    """T5's self-attention with its relative position bias: a (buckets, heads) table looked up
    by bucket ids computed from the positions (log-spaced beyond max_exact), added to the
    scores (no scaling by the head size, as T5 has it)."""

    def __init__(self, width: int = 32, heads: int = 4, buckets: int = 32,
                 max_distance: int = 128):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.buckets, self.max_distance = buckets, max_distance
        self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=False) for _ in range(4))
        self.relative_attention_bias = nn.Embedding(buckets, heads)

    def bucket(self, relative_position):
        half = self.buckets // 2
        buckets = (relative_position > 0).to(torch.long) * half
        relative_position = torch.abs(relative_position)
        max_exact = half // 2
        is_small = relative_position < max_exact
        large = max_exact + (torch.log(relative_position.float() / max_exact)
                             / math.log(self.max_distance / max_exact)
                             * (half - max_exact)).to(torch.long)
        large = torch.min(large, torch.full_like(large, half - 1))
        return buckets + torch.where(is_small, relative_position, large)

    def forward(self, x):
        n, s = x.size(0), x.size(1)
        heads = [t.view(n, s, self.heads, self.head_dim).transpose(1, 2)
                 for t in (self.q(x), self.k(x), self.v(x))]
        q, k, v = heads[0], heads[1], heads[2]
        scores = torch.matmul(q, k.transpose(3, 2))
        context = torch.arange(s, dtype=torch.long)[:, None]
        memory = torch.arange(s, dtype=torch.long)[None, :]
        bias = self.relative_attention_bias(self.bucket(memory - context))
        scores += bias.permute([2, 0, 1]).unsqueeze(0)
        y = torch.matmul(scores.softmax(-1), v)
        return self.o(y.transpose(1, 2).reshape(n, s, -1))
