"""Transformers written by hand in PyTorch (plain Linear, LayerNorm, matmul, softmax; no
nn.Transformer* layers), the same networks as workloads/zoo/transformers.py, to count their
parameters and FLOPs independently of the builder."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with the products, scaling, mask and softmax written out."""

    def __init__(self, width: int, heads: int, causal: bool, packed: bool,
                 seq: int = 1024) -> None:
        super().__init__()
        self.width, self.heads, self.causal, self.packed = width, heads, causal, packed
        if causal:   # True above the diagonal, for a sequence length fixed when built
            self.register_buffer("mask", torch.ones(seq, seq).triu(1).bool(),
                                 persistent=False)
        if packed:
            self.qkv = nn.Linear(width, 3 * width)
        else:
            self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        # sizes read one by one (torch.fx traces shape[i], not unpacking)
        n, s, d = x.shape[0], x.shape[1], self.width
        hd = d // self.heads
        if self.packed:   # indexed, not unpacked: torch.fx traces the former
            qkv = self.qkv(x).split(d, 2)
            parts = (qkv[0], qkv[1], qkv[2])
        else:
            parts = (self.query(x), self.key(x), self.value(x))
        q, k, v = (t.view(n, s, self.heads, hd).transpose(1, 2) for t in parts)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if self.causal:
            scores = scores.masked_fill(self.mask, float("-inf"))
        y = torch.matmul(scores.softmax(-1), v)
        return self.proj(y.transpose(1, 2).reshape(n, s, d))


class PreNormBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int, causal: bool, gelu: str,
                 seq: int = 1024) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, causal, packed=True, seq=seq)
        self.fc, self.out, self.gelu = nn.Linear(width, mlp), nn.Linear(mlp, width), gelu

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.out(F.gelu(self.fc(self.ln_2(x)), approximate=self.gelu))


class PostNormBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.attn = Attention(width, heads, False, packed=False)
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc, self.out = nn.Linear(width, mlp), nn.Linear(mlp, width)

    def forward(self, x):
        x = self.ln_1(x + self.attn(x))
        return self.ln_2(x + self.out(F.gelu(self.fc(x))))


class GPT(nn.Module):
    """GPT-2 for sequences of `seq` tokens (sizes fixed when built, as torch.fx traces)."""

    def __init__(self, width=768, depth=12, heads=12, vocab=50257, positions=1024,
                 seq=1024) -> None:
        super().__init__()
        self.seq, self.positions = seq, positions
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Parameter(torch.zeros(positions, width))
        self.blocks = nn.ModuleList(PreNormBlock(width, heads, 4 * width, True, "tanh",
                                                 seq) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, ids):
        positions = self.wpe if self.seq == self.positions else self.wpe[: self.seq]
        x = self.wte(ids) + positions
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)     # tied to the token embedding


class ViT(nn.Module):
    def __init__(self, width=768, depth=12, heads=12, mlp=3072, patch=16, size=224,
                 classes=1000) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, width, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embedding = nn.Parameter(torch.zeros(1, (size // patch) ** 2 + 1, width))
        self.blocks = nn.ModuleList(PreNormBlock(width, heads, mlp, False, "none")
                                    for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embedding
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x)[:, 0])


class Bert(nn.Module):
    def __init__(self, width=768, depth=12, heads=12, vocab=30522, positions=512,
                 classes=2) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab, width)
        self.position = nn.Embedding(positions, width)
        self.token_type = nn.Embedding(2, width)
        self.ln = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(PostNormBlock(width, heads, 4 * width)
                                    for _ in range(depth))
        self.pooler = nn.Linear(width, width)
        self.classifier = nn.Linear(width, classes)

    def forward(self, ids):
        s = ids.shape[1]
        x = self.word(ids) + self.token_type.weight[0] + self.position.weight[:s]
        x = self.ln(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))
