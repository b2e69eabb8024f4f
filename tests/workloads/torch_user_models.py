"""Models as users write them in plain PyTorch, for from_torch's coverage tests: a nanoGPT /
minGPT-style GPT, an MLP-Mixer, a U-Net (milesial's Pytorch-UNet's structure), ConvNeXt's
channels-first LayerNorm written by hand, and small bodies returning tuples or dicts (the
LLaMA-style decoder: torch_user_llama.py). Written here as a user would, not copied from any
library."""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


# -- nanoGPT / minGPT ---------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    """c_attn split into q, k, v; a causal mask held in a registered buffer (masked_fill), or
    SDPA with is_causal where `flash`."""

    def __init__(self, n_embd, n_head, block_size, flash=False):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout, self.resid_dropout = nn.Dropout(0.1), nn.Dropout(0.1)
        self.n_head, self.n_embd, self.flash = n_head, n_embd, flash
        if not flash:
            self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                                 .view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=True,
                                               dropout_p=0.1 if self.training else 0.0)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NewGELU(nn.Module):
    """minGPT's GELU, the tanh approximation written out."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                           * (x + 0.044715 * torch.pow(x, 3.0))))


class GPTBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size, flash, gelu):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, flash)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd), act=gelu,
                                      c_proj=nn.Linear(4 * n_embd, n_embd),
                                      dropout=nn.Dropout(0.1)))

    def forward(self, x):
        m = self.mlp
        x = x + self.attn(self.ln_1(x))
        return x + m.dropout(m.c_proj(m.act(m.c_fc(self.ln_2(x)))))


class GPT(nn.Module):
    """nanoGPT's GPT: token and position tables (positions from torch.arange), blocks in a
    ModuleList inside a ModuleDict, the output layer tied to the token table, and (logits,
    loss) returned; without targets only the last position's logits (`x[:, [-1], :]`)."""

    def __init__(self, vocab_size=256, block_size=32, n_layer=2, n_head=4, n_embd=64,
                 flash=False, gelu=None, last_only=True):
        super().__init__()
        self.block_size, self.last_only = block_size, last_only
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
            drop=nn.Dropout(0.1),
            h=nn.ModuleList([GPTBlock(n_embd, n_head, block_size, flash, gelu or nn.GELU())
                             for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight   # weight tying

    def forward(self, idx, targets=None):
        b, t = idx.size()
        assert t <= self.block_size, f"Cannot forward sequence of length {t}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return self.lm_head(x[:, [-1], :] if self.last_only else x), None



# -- MLP-Mixer ------------------------------------------------------------------------------
class MixerBlock(nn.Module):
    def __init__(self, tokens, dim, token_hidden, channel_hidden):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.token_mix = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(),
                                       nn.Linear(token_hidden, tokens))
        self.channel_mix = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(),
                                         nn.Linear(channel_hidden, dim))

    def forward(self, x):
        x = x + self.token_mix(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mix(self.norm2(x))


class MLPMixer(nn.Module):
    def __init__(self, image=32, patch=4, dim=64, depth=2, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.Sequential(*[MixerBlock((image // patch) ** 2, dim, 32, 128)
                                      for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(dim=1))


# -- U-Net ----------------------------------------------------------------------------------
def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    """Upsampled (ConvTranspose2d, or bilinear nn.Upsample), padded to the skip's size,
    concatenated with it."""

    def __init__(self, cin, cout, bilinear):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True) \
            if bilinear else nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = double_conv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size()[2] - x1.size()[2], x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=2, bilinear=False, resize=False):
        super().__init__()
        f = 2 if bilinear else 1
        self.inc = double_conv(n_channels, 16)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), double_conv(16, 32))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), double_conv(32, 64))
        self.down3 = nn.Sequential(nn.MaxPool2d(2), double_conv(64, 128 // f))
        self.up1, self.up2 = Up(128, 64 // f, bilinear), Up(64, 32 // f, bilinear)
        self.up3 = Up(32, 16, bilinear)
        self.outc = nn.Conv2d(16, n_classes, 1)
        self.resize = resize

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        y = self.up3(self.up2(self.up1(self.down3(x3), x3), x2), x1)
        out = self.outc(y)
        if self.resize:   # logits at twice the resolution, as a segmentation head may
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False)
        return out


# -- ConvNeXt's LayerNorm, channels first, written out ------------------------------------
class LayerNorm2d(nn.Module):
    """ConvNeXt's LayerNorm: channels_last through F.layer_norm, channels_first by hand."""

    def __init__(self, channels, eps=1e-6, data_format="channels_first"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps, self.data_format, self.shape = eps, data_format, (channels,)

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, data_format="channels_last")
        self.pwconv1, self.act = nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh")
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtMini(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16))
        self.block = ConvNeXtBlock(16)
        self.down = nn.Sequential(LayerNorm2d(16), nn.Conv2d(16, 32, 2, 2))
        self.norm, self.head = nn.LayerNorm(32), nn.Linear(32, 10)

    def forward(self, x):
        x = self.down(self.block(self.stem(x)))
        return self.head(self.norm(x.mean([-2, -1])))


# -- small bodies ---------------------------------------------------------------------------
def ordered_sequential(channels=16):
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, channels, 3, padding=1)), ("bn1", nn.BatchNorm2d(channels)),
        ("relu1", nn.ReLU()), ("skip", nn.Identity()), ("pool", nn.AdaptiveAvgPool2d((1, 1))),
        ("flat", nn.Flatten()), ("fc", nn.Linear(channels, 10))]))


class TwoHeads(nn.Module):
    """A body and two heads, returned as a tuple or a dict."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.body = ordered_sequential()[:-1]
        self.cls, self.box = nn.Linear(16, 10), nn.Linear(16, 4)
        self.as_dict = as_dict

    def forward(self, x):
        f = self.body(x)
        if self.as_dict:
            return {"logits": self.cls(f), "boxes": self.box(f)}
        return self.cls(f), self.box(f)


class HeadsJoined(nn.Module):
    """A submodule's tuple or dict of outputs read inside the model."""

    def __init__(self, as_dict):
        super().__init__()
        self.inner, self.fc, self.as_dict = TwoHeads(as_dict), nn.Linear(14, 2), as_dict

    def forward(self, x):
        out = self.inner(x)
        a, b = (out["logits"], out["boxes"]) if self.as_dict else out
        return self.fc(torch.cat((a, b), 1))


class Clip3D(nn.Module):
    """A small video classifier of (N, C, T, H, W) clips: a 3x3x3 stem, an R(2+1)D block
    (1x3x3 over space, then 3x1x1 over time, with a residual), a strided convolution
    written with F.conv3d on the model's own weight, and the mean over time and space."""

    def __init__(self, channels=8, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm3d(channels), nn.ReLU(inplace=True))
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0),
                                  groups=2)
        self.down = nn.Parameter(torch.randn(2 * channels, channels, 1, 2, 2) * 0.1)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(2 * channels, classes)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.temporal(F.relu(self.spatial(x))))
        x = F.conv3d(x, self.down, stride=(1, 2, 2))
        return self.fc(self.pool(x).flatten(1))
