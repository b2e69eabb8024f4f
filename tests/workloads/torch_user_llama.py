"""A LLaMA-style decoder as users write it in plain PyTorch, for from_torch's coverage tests:
RMSNorm by hand, rotary embeddings (rotate_half, interleaved pairs, or Meta's reference code's
complex products: `view_as_complex`, a product with a complex table, `view_as_real`),
grouped-query attention, SwiGLU (Meta's and lit-gpt's idioms). Written here as a user would,
not copied from any library."""
import torch
import torch.nn.functional as F
from torch import nn


# -- LLaMA ----------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        return self._norm(x.float()).type_as(x) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x):
    """The interleaved form (GPT-J, Meta's pairs): (x0, x1) -> (-x1, x0) pair by pair."""
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class LlamaAttention(nn.Module):
    """Rotary embeddings from cos and sin buffers (halves, or `interleaved` pairs), keys and
    values repeated for grouped-query attention with repeat_interleave or expand."""

    def __init__(self, dim, n_heads, n_kv_heads, max_seq, interleaved=False,
                 gqa="repeat_interleave"):
        super().__init__()
        self.n_heads, self.n_kv, self.hd = n_heads, n_kv_heads, dim // n_heads
        self.wq = nn.Linear(dim, n_heads * self.hd, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.hd, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.hd, bias=False)
        self.wo = nn.Linear(n_heads * self.hd, dim, bias=False)
        self.interleaved, self.gqa = interleaved, gqa
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        freqs = torch.outer(torch.arange(max_seq).float(), inv)
        emb = freqs.repeat_interleave(2, dim=-1) if interleaved else torch.cat((freqs, freqs), -1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        k = self.wk(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        cos, sin = self.cos[:T], self.sin[:T]
        rot = rotate_every_two if self.interleaved else rotate_half
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        rep = self.n_heads // self.n_kv
        if rep > 1 and self.gqa == "repeat_interleave":
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        elif rep > 1:
            k = k[:, :, None].expand(B, self.n_kv, rep, T, self.hd).reshape(B, -1, T, self.hd)
            v = v[:, :, None].expand(B, self.n_kv, rep, T, self.hd).reshape(B, -1, T, self.hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).contiguous().view(B, T, -1))


class SeqFirstAttention(LlamaAttention):
    """llama2.c's attention: heads kept after the sequence, (B, T, H, D), until SDPA; rotary
    pairs as real and imaginary parts (`reshape(..., -1, 2).unbind(-1)`, restacked), and
    repeat_kv of that layout (`x[:, :, :, None, :].expand(...).reshape(...)`)."""

    def forward(self, x):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.hd)
        k = self.wk(x).view(B, T, self.n_kv, self.hd)
        v = self.wv(x).view(B, T, self.n_kv, self.hd)
        cos = self.cos[:T, ::2].view(1, T, 1, self.hd // 2)    # one angle per pair
        sin = self.sin[:T, ::2].view(1, T, 1, self.hd // 2)

        def rotate(t):
            re, im = t.float().reshape(t.shape[:-1] + (-1, 2)).unbind(-1)
            return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).flatten(3)

        def repeat_kv(t, rep):
            b, s, kv, d = t.shape
            return t[:, :, :, None, :].expand(b, s, kv, rep, d).reshape(b, s, kv * rep, d)
        q, k = rotate(q), repeat_kv(rotate(k), self.n_heads // self.n_kv)
        v = repeat_kv(v, self.n_heads // self.n_kv)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        return self.wo(y.transpose(1, 2).contiguous().view(B, T, -1))


class ComplexRotaryAttention(LlamaAttention):
    """Meta's reference LLaMA's rotary embedding: each pair of q's and k's (B, T, H, D) seen
    as a complex number (`view_as_complex`), times a complex table (`torch.polar` of the
    angles, (T, D / 2) viewed (1, T, 1, D / 2)), seen as real again (`view_as_real`, then
    `flatten(3)`)."""

    def __init__(self, dim, n_heads, n_kv_heads, max_seq, **attention):
        super().__init__(dim, n_heads, n_kv_heads, max_seq, **attention)
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        freqs = torch.outer(torch.arange(max_seq).float(), inv)
        self.register_buffer("freqs_cis", torch.polar(torch.ones_like(freqs), freqs),
                             persistent=False)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.hd)
        k = self.wk(x).view(B, T, self.n_kv, self.hd)
        v = self.wv(x).view(B, T, self.n_kv, self.hd)
        freqs_cis = self.freqs_cis[:T].view(1, T, 1, self.hd // 2)

        def rotate(t):
            z = torch.view_as_complex(t.float().reshape(*t.shape[:-1], -1, 2))
            return torch.view_as_real(z * freqs_cis).flatten(3).type_as(t)
        q, k = rotate(q).transpose(1, 2), rotate(k).transpose(1, 2)
        rep = self.n_heads // self.n_kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.transpose(1, 2).repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).contiguous().view(B, T, -1))


class LlamaBlock(nn.Module):
    def __init__(self, dim, n_heads, n_kv, max_seq, seq_first=False, complex_rotary=False,
                 **attention):
        super().__init__()
        hidden = 4 * dim * 2 // 3
        self.attention_norm, self.ffn_norm = RMSNorm(dim), RMSNorm(dim)
        if seq_first:   # pairs: its tables repeat each angle twice
            attention["interleaved"] = True
        kind = ComplexRotaryAttention if complex_rotary else \
            SeqFirstAttention if seq_first else LlamaAttention
        self.attention = kind(dim, n_heads, n_kv, max_seq, **attention)
        self.w1, self.w3 = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        h = x + self.attention(self.attention_norm(x))
        f = self.ffn_norm(h)
        return h + self.w2(F.silu(self.w1(f)) * self.w3(f))   # SwiGLU


class Llama(nn.Module):
    def __init__(self, vocab=256, dim=64, n_layers=2, n_heads=4, n_kv=2, max_seq=64,
                 **attention):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([LlamaBlock(dim, n_heads, n_kv, max_seq, **attention)
                                     for _ in range(n_layers)])
        self.norm, self.output = RMSNorm(dim), nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.output(self.norm(h)).float()
