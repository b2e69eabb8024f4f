"""Models of the sizes users bring, in plain PyTorch, imported on the meta device through the
command line's file path (tests/workloads/test_torch_file_meta.py,
benchmarks/import_big_models.py): a LLaMA-shaped decoder (7B, 13B, 70B), Mixtral's mixture of
experts (8x7B) and ViT-H/14. Each forward makes what such models make in theirs: position ids
with arange, rotary cos and sin computed from them, a causal mask made with torch.triu (or a
boolean one with torch.ones and tril, or SDPA's is_causal), top-k routing; small
configurations of the same classes are what the tests compare with a run on the CPU."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from tests.workloads.torch_hf_style import LlamaMLP
from tests.workloads.torch_user_code import MoEBlock


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    """Rotary embeddings from positions made in the forward, grouped-query heads repeated,
    and a causal mask: "sdpa" (is_causal), "triu" (an additive -inf mask and softmax, the
    eager path) or "bool" (a tril of ones passed to SDPA)."""

    def __init__(self, dim: int, heads: int, kv_heads: int, mask: str = "sdpa"):
        super().__init__()
        self.heads, self.kv_heads, self.hd, self.mask = heads, kv_heads, dim // heads, mask
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        inv_freq = 1.0 / 10000 ** (torch.arange(0, self.hd, 2).float() / self.hd)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x):
        n, s, _ = x.shape
        q = self.q_proj(x).view(n, s, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(n, s, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(n, s, self.kv_heads, self.hd).transpose(1, 2)
        positions = torch.arange(s, device=x.device)
        freqs = torch.outer(positions.float(), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        if rep > 1:
            k = k[:, :, None].expand(n, self.kv_heads, rep, s, self.hd).reshape(n, -1, s, self.hd)
            v = v[:, :, None].expand(n, self.kv_heads, rep, s, self.hd).reshape(n, -1, s, self.hd)
        if self.mask == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.mask == "bool":
            causal = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal)
        else:
            causal = torch.full((s, s), float("-inf"), device=x.device).triu(1)
            scores = q @ k.transpose(2, 3) / math.sqrt(self.hd) + causal
            y = F.softmax(scores, dim=-1, dtype=torch.float32) @ v
        return self.o_proj(y.transpose(1, 2).reshape(n, s, -1))


class Block(nn.Module):
    def __init__(self, dim, heads, kv_heads, hidden, mask="sdpa", experts=0, top_k=2):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(dim), RMSNorm(dim)
        self.self_attn = Attention(dim, heads, kv_heads, mask)
        self.mlp = MoEBlock(dim, hidden, experts, top_k) if experts else LlamaMLP(dim, hidden)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """Token ids in, (N, S, vocab) logits out."""

    def __init__(self, vocab=256, dim=64, layers=2, heads=4, kv_heads=2, hidden=172,
                 mask="sdpa", experts=0, top_k=2):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(Block(dim, heads, kv_heads, hidden, mask, experts, top_k)
                                    for _ in range(layers))
        self.norm, self.lm_head = RMSNorm(dim), nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h)
        return self.lm_head(self.norm(h))


class ViT(nn.Module):
    """Patches by a strided convolution, a class token, a learned position table, pre-norm
    blocks of nn.MultiheadAttention and a GELU MLP, the class token's logits."""

    def __init__(self, image=32, patch=8, dim=64, depth=2, heads=4, mlp=128, classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(
            dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


# The published shapes (vocabulary 32000, LLaMA 2's and Mixtral's layer sizes).
def llama_7b():
    return Decoder(32000, 4096, 32, 32, 32, 11008)


def llama_13b():
    return Decoder(32000, 5120, 40, 40, 40, 13824)


def llama_70b():
    return Decoder(32000, 8192, 80, 64, 8, 28672)


def mixtral_8x7b():
    return Decoder(32000, 4096, 32, 32, 8, 14336, experts=8, top_k=2)


def vit_h14():
    return ViT(224, 14, 1280, 32, 16, 5120, 1000)
