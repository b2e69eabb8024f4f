"""Models whose forward takes several inputs, written as users write them: an image and a
condition read late, two towers (an image and its caption's token ids), an encoder-decoder
(source and target token ids) and token ids with their attention mask. The diffusion U-Net
(an image and its timesteps) is torch_user_models_recent.DiffusionUNet."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Conditioned(nn.Module):
    """A convolutional body; the condition (N, 8) joins only at the head."""

    def __init__(self, classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.cond = nn.Linear(8, 32)
        self.head = nn.Linear(32, classes)

    def forward(self, x, cond):
        h = self.body(x).mean((2, 3))
        return self.head(F.relu(h + self.cond(cond)))


class TwoTower(nn.Module):
    """An image tower and a text tower over token ids, joined by a classifier."""

    def __init__(self, vocab=100, dim=32, classes=5):
        super().__init__()
        self.visual = nn.Sequential(nn.Conv2d(3, 16, 4, 4), nn.ReLU(), nn.Conv2d(16, dim, 2, 2))
        self.embed = nn.Embedding(vocab, dim)
        self.text = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(2 * dim, classes)

    def forward(self, image, text):
        img = self.visual(image).mean((2, 3))
        txt = self.text(self.embed(text)).mean(1)
        return self.head(torch.cat([img, txt], 1))


class Seq2Seq(nn.Module):
    """A transformer encoder-decoder over source and target token ids (teacher forcing)."""

    def __init__(self, vocab=120, dim=32):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(vocab, dim), nn.Embedding(vocab, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoderLayer(dim, 4, 64, dropout=0.0, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, src, tgt):
        memory = self.encoder(self.src_embed(src))
        return self.out(self.decoder(self.tgt_embed(tgt), memory))


class MaskedEncoder(nn.Module):
    """Token ids and a (N, S) attention mask of ones and zeros (given as numbers), applied to
    the attention scores as BERT applies it."""

    def __init__(self, vocab=100, dim=32, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)
        self.dim = dim

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / math.sqrt(self.dim)
        scores = scores + (1.0 - attention_mask[:, None, :]) * -10000.0
        x = x + self.proj(torch.softmax(scores, dim=-1) @ v)
        return self.head(x.mean(1))
