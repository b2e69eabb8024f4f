"""More models written the way users write them today, for from_torch (not library code):
a Swin-style block (windows, roll, relative position bias), a DETR-style detector (a CNN
backbone, an encoder-decoder transformer with learned queries, class and box heads), a
Conformer block (feed-forward halves, attention, a convolution module with GLU), a PointNet
(Conv1d over points, max over points), a WaveNet-style stack (dilated causal Conv1d, gated
activations, residual and skip paths), a diffusion U-Net step (timestep embedding, GroupNorm,
SiLU, attention at the bottom), an RWKV-style block (token shift, time and channel mixing)
and a CLIP-style two-tower model scored against fixed text features."""
import math

import torch
from torch import nn
from torch.nn import functional as F


# -- Swin-style -----------------------------------------------------------------------------
def window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def window_reverse(windows, ws, h, w):
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim, ws, heads):
        super().__init__()
        self.heads, self.ws, self.scale = heads, ws, (dim // heads) ** -0.5
        self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
        flat = coords.flatten(1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.bias_table[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = (attn + bias.unsqueeze(0)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim=32, ws=4, heads=2, shift=2):
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):           # (B, H, W, C)
        b, h, w, c = x.shape
        y = torch.roll(self.norm1(x), shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, self.ws)), self.ws, h, w)
        x = x + torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        return x + self.mlp(self.norm2(x))


class SwinTiny(nn.Module):
    def __init__(self, dim=32, classes=10):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(SwinBlock(dim, shift=0), SwinBlock(dim))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.blocks(self.embed(x).permute(0, 2, 3, 1))
        return self.head(self.norm(x).mean(dim=(1, 2)))


# -- DETR-style ---------------------------------------------------------------------------
class DETR(nn.Module):
    def __init__(self, dim=32, queries=10, classes=5):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU())
        self.input_proj = nn.Conv2d(64, dim, 1)
        self.pos = nn.Parameter(torch.randn(1, 64, dim))
        self.query = nn.Embedding(queries, dim)
        self.transformer = nn.Transformer(dim, 4, 1, 1, 64, batch_first=True, dropout=0.0)
        self.cls = nn.Linear(dim, classes + 1)
        self.box = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4))

    def forward(self, x):
        f = self.input_proj(self.backbone(x)).flatten(2).transpose(1, 2) + self.pos
        q = self.query.weight.unsqueeze(0).repeat(x.shape[0], 1, 1)
        h = self.transformer(f, q)
        return {"pred_logits": self.cls(h), "pred_boxes": self.box(h).sigmoid()}


# -- Conformer ---------------------------------------------------------------------------
class ConvModule(nn.Module):
    def __init__(self, dim, kernel=7):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Conv1d(dim, 2 * dim, 1), nn.Conv1d(dim, dim, 1)
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x):          # (B, T, C)
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        y = self.pw2(F.silu(self.bn(self.dw(y))))
        return y.transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.SiLU(),
                                 nn.Dropout(0.1), nn.Linear(4 * dim, dim), nn.Dropout(0.1))

    def forward(self, x):
        return self.net(x)


class ConformerBlock(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.ff1, self.ff2 = FeedForward(dim), FeedForward(dim)
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.conv = ConvModule(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = x + 0.5 * self.ff1(x)
        y = self.norm_attn(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        x = x + self.conv(x)
        return self.norm(x + 0.5 * self.ff2(x))


class Conformer(nn.Module):
    def __init__(self, features=16, dim=32, classes=20):
        super().__init__()
        self.proj = nn.Linear(features, dim)
        self.blocks = nn.Sequential(ConformerBlock(dim), ConformerBlock(dim))
        self.out = nn.Linear(dim, classes)

    def forward(self, x):          # (B, T, features)
        return self.out(self.blocks(self.proj(x)))


# -- PointNet -------------------------------------------------------------------------------
class PointNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.feat = nn.Sequential(
            nn.Conv1d(3, 32, 1), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 64, 1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 256, 1), nn.BatchNorm1d(256))
        self.head = nn.Sequential(nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(128, classes))

    def forward(self, x):          # (B, 3, points)
        x = torch.max(self.feat(x), 2, keepdim=True)[0]
        return self.head(x.view(-1, 256))


# -- WaveNet --------------------------------------------------------------------------------
class CausalConv1d(nn.Conv1d):
    def __init__(self, cin, cout, kernel, dilation=1):
        super().__init__(cin, cout, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0)))


class WaveNetLayer(nn.Module):
    def __init__(self, channels, skip, dilation):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, 2, dilation)
        self.res, self.skip = nn.Conv1d(channels, channels, 1), nn.Conv1d(channels, skip, 1)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)
        return x + self.res(z), self.skip(z)


class WaveNet(nn.Module):
    def __init__(self, channels=16, skip=32, classes=256, layers=6):
        super().__init__()
        self.start = CausalConv1d(1, channels, 2)
        self.layers = nn.ModuleList(WaveNetLayer(channels, skip, 2 ** (i % 4))
                                    for i in range(layers))
        self.end = nn.Sequential(nn.ReLU(), nn.Conv1d(skip, skip, 1), nn.ReLU(),
                                 nn.Conv1d(skip, classes, 1))

    def forward(self, x):          # (B, 1, T)
        x = self.start(x)
        total = 0
        for layer in self.layers:
            x, s = layer(x)
            total = total + s
        return self.end(total)


# -- diffusion U-Net ------------------------------------------------------------------------
def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(8, cin), nn.GroupNorm(8, cout)
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1), \
            nn.Conv2d(cout, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm, self.qkv, self.proj = nn.GroupNorm(8, c), nn.Conv2d(c, 3 * c, 1), \
            nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)
        return x + self.proj((v @ attn.transpose(1, 2)).reshape(b, c, h, w))


class DiffusionUNet(nn.Module):
    def __init__(self, ch=16, tdim=64):
        super().__init__()
        self.tdim = tdim
        self.time = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.ch = ch
        self.inc = nn.Conv2d(3, ch, 3, padding=1)
        self.down1, self.down2 = ResBlock(ch, ch, tdim), ResBlock(ch, 2 * ch, tdim)
        self.pool = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.mid, self.attn = ResBlock(2 * ch, 2 * ch, tdim), AttnBlock(2 * ch)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up1 = ResBlock(3 * ch, ch, tdim)
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, padding=1))

    def forward(self, x, t):
        temb = self.time(timestep_embedding(t, self.ch))
        h1 = self.down1(self.inc(x), temb)
        h = self.attn(self.mid(self.down2(self.pool(h1), temb), temb))
        h = self.up1(torch.cat([self.up(h), h1], 1), temb)
        return self.out(h)


class DiffusionStep(nn.Module):
    """The noise prediction at one timestep per sample, as a training step samples them: the
    timesteps are fixed here (a buffer), so the model takes the noisy image alone."""

    def __init__(self, batch=2):
        super().__init__()
        self.unet = DiffusionUNet()
        self.register_buffer("t", torch.arange(batch) * 100)

    def forward(self, x):
        return self.unet(x, self.t)


# -- RWKV-style -----------------------------------------------------------------------------
class RWKVBlock(nn.Module):
    """Token shift (ZeroPad2d), a time mix with a receptance gate and a channel mix with
    squared ReLU; the WKV recurrence is replaced by a causal softmax attention, as
    attention-form RWKV ports do."""

    def __init__(self, dim=32):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.shift = nn.ZeroPad2d((0, 0, 1, -1))
        self.mix_k, self.mix_r = nn.Parameter(torch.rand(1, 1, dim)), \
            nn.Parameter(torch.rand(1, 1, dim))
        self.key, self.value, self.recept = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.out = nn.Linear(dim, dim, bias=False)
        self.ck, self.cv = nn.Linear(dim, 4 * dim, bias=False), nn.Linear(4 * dim, dim,
                                                                          bias=False)

    def forward(self, x):
        y = self.ln1(x)
        prev = self.shift(y)
        k = self.key(y * self.mix_k + prev * (1 - self.mix_k))
        r = torch.sigmoid(self.recept(y * self.mix_r + prev * (1 - self.mix_r)))
        v = self.value(y)
        att = F.scaled_dot_product_attention(k[:, None], k[:, None], v[:, None],
                                             is_causal=True)[:, 0]
        x = x + self.out(r * att)
        y = self.ln2(x)
        return x + self.cv(torch.square(torch.relu(self.ck(y))))


class RWKV(nn.Module):
    def __init__(self, vocab=128, dim=32):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.Sequential(RWKVBlock(dim), RWKVBlock(dim))
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        return self.head(self.ln(self.blocks(self.emb(ids))))


# -- CLIP-style -----------------------------------------------------------------------------
class CLIPStyle(nn.Module):
    """An image tower and a projection, scored by cosine similarity against text features
    held fixed (a zero-shot classifier's prompt embeddings), with CLIP's learned temperature."""

    def __init__(self, dim=32, classes=8):
        super().__init__()
        self.visual = nn.Sequential(nn.Conv2d(3, 16, 4, 4), nn.Flatten(2))
        self.encoder = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                                  norm_first=True)
        self.proj = nn.Linear(16, dim, bias=False)
        self.register_buffer("text", F.normalize(torch.randn(classes, dim), dim=-1))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, x):
        tokens = self.encoder(self.visual(x).transpose(1, 2))
        image = F.normalize(self.proj(tokens.mean(1)), dim=-1)
        return self.logit_scale.exp() * image @ self.text.t()
