"""Code as users write it, beyond whole architectures, for from_torch's coverage (the import
sweep's "user" group and the tests): a custom autograd Function, gradient checkpointing,
in-place ops, Python control flow, SDPA with a boolean mask buffer or a learned additive
mask, einsum with a 3-D weight, a network of torch.nn.functional calls, a loop over chunks,
a sum over the features, layers under weight norm, and a mixture of experts with top-k
routing in Mixtral's layout. Written here as a user would, not copied from any library."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class CustomFunction(nn.Module):
    """A custom autograd Function between two layers (traced through its forward)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(32, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.b(_Square.apply(self.a(x)))


class Checkpointed(nn.Module):
    """Blocks run under torch.utils.checkpoint (the same forward; recomputation is a policy:
    `recompute`)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(32, 32), nn.GELU())
                                    for _ in range(3))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False)
        return self.head(x)


class InPlace(nn.Module):
    """relu_, +=, mul_ and F.relu(inplace=True) on convolution outputs."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.c1(x)
        y.relu_()
        z = self.c2(y)
        z += y
        z.mul_(0.5)
        F.relu(z, inplace=True)
        return self.fc(z.mean((2, 3)))


class ControlFlow(nn.Module):
    """A loop and branches on Python values and on shapes."""

    def __init__(self, depth=3):
        super().__init__()
        self.a, self.b, self.depth = nn.Linear(32, 32), nn.Linear(32, 10), depth

    def forward(self, x):
        for i in range(self.depth):
            x = x + torch.tanh(self.a(x)) if i % 2 == 0 else F.silu(self.a(x))
        if x.shape[-1] == 32:
            x = self.b(x)
        return x


class MaskedAttention(nn.Module):
    """SDPA with attn_mask: a boolean causal buffer, or a learned additive (heads, T, T)
    bias."""

    def __init__(self, learned=False, tokens=16):
        super().__init__()
        self.qkv, self.out = nn.Linear(32, 96), nn.Linear(32, 32)
        self.learned = learned
        if learned:
            self.bias = nn.Parameter(torch.zeros(4, tokens, tokens))
        else:
            self.register_buffer("causal", torch.ones(tokens, tokens, dtype=torch.bool).tril())

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, 4, c // 4).permute(2, 0, 3, 1, 4)
        mask = self.bias if self.learned else self.causal[:t, :t]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(n, t, c))


class EinsumHeads(nn.Module):
    """Attention by einsum, the heads projected by a 3-D weight ('btc,hdc->bthd') and merged
    by another ('bthd,hdc->btc')."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 8, 32) * 0.1)
        self.out = nn.Parameter(torch.randn(4, 8, 32) * 0.1)

    def forward(self, x):
        h = torch.einsum("btc,hdc->bthd", x, self.w)
        a = torch.einsum("bthd,bshd->bhts", h, h).softmax(-1)
        return torch.einsum("bthd,hdc->btc", torch.einsum("bhts,bshd->bthd", a, h), self.out)


class Functional(nn.Module):
    """A network of torch.nn.functional calls on the model's own parameters."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(64, 3, 3, 3) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(64))
        self.w2 = nn.Parameter(torch.randn(10, 64) * 0.1)

    def forward(self, x):
        x = F.leaky_relu(F.batch_norm(F.conv2d(x, self.w1, self.b1, padding=1), None, None,
                                      training=True), 0.1)
        x = F.adaptive_avg_pool2d(F.max_pool2d(x, 2), 1).flatten(1)
        return F.linear(F.dropout(x, 0.1, self.training), self.w2)


class ChunkLoop(nn.Module):
    """A layer applied to each chunk of the sequence in a loop, the chunks concatenated and
    summed over the positions."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(32, 32)

    def forward(self, x):
        pieces = [self.a(chunk).relu() for chunk in x.split(8, dim=1)]
        return torch.cat(pieces, 1).sum(1)


class TopKRouter(nn.Module):
    def __init__(self, dim, experts, top_k):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(experts, dim) * 0.1)
        self.top_k = top_k

    def forward(self, x):
        probs = F.linear(x, self.weight).softmax(-1)
        weights, index = probs.topk(self.top_k, dim=-1)
        return weights / weights.sum(-1, keepdim=True), index


class Experts(nn.Module):
    """Every expert's gated MLP held as two 3-D tensors, run on the tokens routed to it."""

    def __init__(self, dim, hidden, experts):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(experts, 2 * hidden, dim) * 0.1)
        self.down_proj = nn.Parameter(torch.randn(experts, dim, hidden) * 0.1)
        self.act_fn = nn.SiLU()

    def forward(self, x, weights, index):
        out = torch.zeros_like(x)
        for e in range(self.gate_up_proj.shape[0]):
            token, choice = torch.where(index == e)
            gate, up = F.linear(x[token], self.gate_up_proj[e]).chunk(2, dim=-1)
            y = F.linear(self.act_fn(gate) * up, self.down_proj[e])
            out.index_add_(0, token, y * weights[token, choice, None])
        return out


class MoEBlock(nn.Module):
    """A mixture of experts as Mixtral lays it out: a top-k router and the experts."""

    def __init__(self, dim=32, hidden=64, experts=4, top_k=2):
        super().__init__()
        self.gate = TopKRouter(dim, experts, top_k)
        self.experts = Experts(dim, hidden, experts)

    def forward(self, x):
        n, s, d = x.shape
        rows = x.reshape(n * s, d)
        return self.experts(rows, *self.gate(rows)).reshape(n, s, d)


class MoEModel(nn.Module):
    """Two pre-norm blocks of a mixture of experts and a head."""

    def __init__(self, dim=32, experts=4, top_k=2):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
        self.moes = nn.ModuleList(MoEBlock(dim, 2 * dim, experts, top_k) for _ in range(2))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        for norm, moe in zip(self.norms, self.moes, strict=True):
            x = x + moe(norm(x))
        return self.head(x)


class WeightNormed(nn.Module):
    """wav2vec2's positional convolution: a grouped Conv1d under weight norm over the kernel
    dimension, and a weight-normed Linear."""

    def __init__(self, dim=16):
        super().__init__()
        from torch.nn.utils.parametrizations import weight_norm
        self.conv = weight_norm(nn.Conv1d(dim, dim, 8, padding=4, groups=4), dim=2)
        self.fc = weight_norm(nn.Linear(dim, 10))

    def forward(self, x):   # x: (N, T, C)
        y = F.gelu(self.conv(x.transpose(1, 2))[:, :, :-1])
        return self.fc(x + y.transpose(1, 2))


# name -> (model, example input)
CASES = {
    "custom-autograd-function": lambda: (CustomFunction(), torch.randn(4, 32)),
    "gradient-checkpointing": lambda: (Checkpointed(), torch.randn(4, 32)),
    "in-place-ops": lambda: (InPlace(), torch.randn(2, 3, 16, 16)),
    "control-flow": lambda: (ControlFlow(), torch.randn(4, 32)),
    "sdpa-bool-mask": lambda: (MaskedAttention(), torch.randn(2, 16, 32)),
    "sdpa-learned-mask": lambda: (MaskedAttention(learned=True), torch.randn(2, 16, 32)),
    "einsum-3d-weight": lambda: (EinsumHeads(), torch.randn(2, 16, 32)),
    "functional": lambda: (Functional(), torch.randn(2, 3, 16, 16)),
    "chunk-loop-sum": lambda: (ChunkLoop(), torch.randn(2, 32, 32)),
    "mixture-of-experts": lambda: (MoEModel(), torch.randn(2, 16, 32)),
    "weight-norm": lambda: (WeightNormed(), torch.randn(2, 12, 16)),
}
