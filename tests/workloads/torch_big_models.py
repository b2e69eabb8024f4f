"""Models of the sizes users bring, in plain PyTorch, imported on the meta device through the
command line's file path (tests/workloads/test_torch_file_meta.py,
benchmarks/import_big_models.py): a LLaMA-shaped decoder (7B, 13B, 70B), Mixtral's mixture of
experts (8x7B), ViT-H/14 and an SDXL-shaped U-Net (2.54B parameters: SDXL's 2.57B less its
added text and size embedding), and LLaMA-2-7B and Mixtral-8x7B as Hugging Face's classes
(where transformers is installed). Each forward makes what such models make in theirs:
position ids with arange, rotary cos and sin computed from them, a causal mask made with
torch.triu (or a boolean one with torch.ones and tril, or SDPA's is_causal), top-k routing,
a sinusoidal timestep embedding; small configurations of the same classes are what the tests
compare with a run on the CPU."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from tests.workloads.torch_hf_style import LlamaMLP
from tests.workloads.torch_user_code import MoEBlock
from tests.workloads.torch_user_models_recent import ResBlock


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


class CrossAttentionBlock(nn.Module):
    """Stable Diffusion's transformer over the pixels of a feature map: self-attention,
    cross-attention to the text's (N, 77, D_text) states, a GEGLU MLP."""

    def __init__(self, c: int, heads: int, context: int, depth: int):
        super().__init__()
        self.heads, self.norm = heads, nn.GroupNorm(32, c)
        self.proj_in, self.proj_out = nn.Linear(c, c), nn.Linear(c, c)
        self.layers = nn.ModuleList(nn.ModuleDict(dict(
            norm1=nn.LayerNorm(c), q1=nn.Linear(c, c, bias=False), kv1=nn.Linear(c, 2 * c,
                                                                                bias=False),
            out1=nn.Linear(c, c), norm2=nn.LayerNorm(c), q2=nn.Linear(c, c, bias=False),
            kv2=nn.Linear(context, 2 * c, bias=False), out2=nn.Linear(c, c),
            norm3=nn.LayerNorm(c), geglu=nn.Linear(c, 8 * c), ff_out=nn.Linear(4 * c, c)))
            for _ in range(depth))

    def _attend(self, q, kv, out):
        n, s, c = q.shape
        k, v = kv.chunk(2, dim=-1)
        q, k, v = (t.reshape(n, -1, self.heads, c // self.heads).transpose(1, 2)
                   for t in (q, k, v))
        return out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, s, c))

    def forward(self, x, context):
        n, c, h, w = x.shape
        y = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for layer in self.layers:
            z = layer["norm1"](y)
            y = y + self._attend(layer["q1"](z), layer["kv1"](z), layer["out1"])
            y = y + self._attend(layer["q2"](layer["norm2"](y)), layer["kv2"](context),
                                 layer["out2"])
            a, gate = layer["geglu"](layer["norm3"](y)).chunk(2, dim=-1)
            y = y + layer["ff_out"](a * F.gelu(gate))
        return x + self.proj_out(y).transpose(1, 2).reshape(n, c, h, w)


class SDUNet(nn.Module):
    """A Stable-Diffusion-style U-Net: latents (N, 4, H, W), a timestep per sample and the
    text's states (N, 77, context); per level two ResBlocks, each followed by a cross-attention
    transformer of `depths[i]` layers (none where 0), a strided convolution down; a middle
    of two ResBlocks around the last level's transformer; the same up with skip connections,
    nearest upsampling. SDXL: channels (320, 640, 1280), depths
    (0, 2, 10), context 2048, 128 x 128 latents."""

    def __init__(self, channels=(32, 64), depths=(0, 1), heads=2, context=32):
        super().__init__()
        c0, tdim = channels[0], 4 * channels[0]
        self.c0 = c0
        self.time = nn.Sequential(nn.Linear(c0, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(4, c0, 3, padding=1)
        self.down, self.up, skips, c = nn.ModuleList(), nn.ModuleList(), [c0], c0
        for i, (ch, depth) in enumerate(zip(channels, depths, strict=True)):
            for _ in range(2):
                self.down.append(nn.ModuleList([ResBlock(c, ch, tdim), CrossAttentionBlock(
                    ch, heads, context, depth) if depth else nn.Identity()]))
                c = ch
                skips.append(c)
            if i < len(channels) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, tdim), CrossAttentionBlock(
            c, heads, context, depths[-1] or 1), ResBlock(c, c, tdim)])
        for i, (ch, depth) in reversed(list(enumerate(zip(channels, depths, strict=True)))):
            for _ in range(3):
                self.up.append(nn.ModuleList([ResBlock(c + skips.pop(), ch, tdim),
                                              CrossAttentionBlock(ch, heads, context, depth)
                                              if depth else nn.Identity()]))
                c = ch
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.conv_out = nn.Sequential(nn.GroupNorm(32, c), nn.SiLU(),
                                      nn.Conv2d(c, 4, 3, padding=1))

    def forward(self, x, t, context):
        half = self.c0 // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
        angles = t[:, None].float() * freqs[None]
        temb = self.time(torch.cat([angles.cos(), angles.sin()], dim=-1))
        h, skips = self.conv_in(x), []
        skips.append(h)
        for block in self.down:
            h = block(h) if isinstance(block, nn.Conv2d) else \
                self._level(block, h, temb, context)
            skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb), context), temb)
        for block in self.up:
            h = block(h) if isinstance(block, nn.Upsample) else \
                self._level(block, torch.cat([h, skips.pop()], dim=1), temb, context)
        return self.conv_out(h)

    @staticmethod
    def _level(block, h, temb, context):
        res, attn = block
        h = res(h, temb)
        return attn(h, context) if isinstance(attn, CrossAttentionBlock) else h


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


def sdxl_unet():
    return SDUNet((320, 640, 1280), (0, 2, 10), heads=20, context=2048)


# The same through Hugging Face's classes (transformers is no dependency of dnnsim).
def hf_llama_7b():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32000, use_cache=False))


def hf_mixtral_8x7b():
    from transformers import MixtralConfig, MixtralForCausalLM
    return MixtralForCausalLM(MixtralConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=32000, num_local_experts=8, num_experts_per_tok=2,
        use_cache=False))
