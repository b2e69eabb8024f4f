"""A batch folded with windows, heads or patches by a reshape, (N, ...) to (N * f, ...), imports
with the batch kept first: (N, f, ...) in the graph, the same values, each op's shape checked
against PyTorch's unfolded, dimensions after the fold counted one further; FLOPs and
parameters are PyTorch's, the graph replays and trains. A flatten from dimension 0 that folds
(Hiera's unroll) is that reshape. A tensor repeated along the batch
into such a fold (GCViT's global query, repeat_interleave(windows, dim=0)) is one copy. An op
that works along the folded dimension, or that no fold supports, is refused naming the fold."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops  # noqa: E402,E501
from tests.workloads.test_torch_import_transformers import Classifier, imported  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class WindowAttention(nn.Module):
    """timm's Swin block, written out: (N, H, W, C) partitioned into windows folded into the
    batch, qkv moved before the batch and unbound, the shifted-window mask added to the scores
    seen as (N, windows, heads, T, T), softmax as a module, windows reversed."""

    def __init__(self, side=8, window=4, width=16, heads=2):
        super().__init__()
        self.window, self.heads = window, heads
        tokens, windows = window * window, (side // window) ** 2
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.softmax = nn.Softmax(dim=-1)
        self.register_buffer("mask", torch.zeros(windows, tokens, tokens))

    def forward(self, x):
        n, h, w, c = x.shape
        s, heads = self.window, self.heads
        x = x.view(n, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).contiguous()
        x = x.view(-1, s * s, c)                                      # (N * windows, T, C)
        b_, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b_, t, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = q @ k.transpose(-2, -1) * (c // heads) ** -0.5
        windows = self.mask.shape[0]
        attn = attn.view(-1, windows, heads, t, t) + self.mask.unsqueeze(1).unsqueeze(0)
        attn = self.softmax(attn.view(-1, heads, t, t))
        y = self.proj((attn @ v).transpose(1, 2).reshape(b_, t, c))
        y = y.view(-1, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)
        return y.mean((1, 2))


class HeadsInBatch(nn.Module):
    """BLOOM's attention: heads folded into the batch, baddbmm with ALiBi offsets held in a
    buffer, the scores unfolded for the mask, folded again for the product with v."""

    def __init__(self, width=32, heads=4, batch=2, seq=8):
        super().__init__()
        self.heads = heads
        self.qkv, self.dense = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.register_buffer("alibi", torch.randn(batch * heads, 1, seq))

    def forward(self, x):
        n, s, c = x.shape
        h, d = self.heads, c // self.heads
        q, k, v = self.qkv(x).view(n, s, h, 3, d).unbind(3)
        q = q.transpose(1, 2).reshape(n * h, s, d)
        k = k.permute(0, 2, 3, 1).reshape(n * h, d, s)
        v = v.transpose(1, 2).reshape(n * h, s, d)
        scores = self.alibi.baddbmm(q, k, beta=1.0, alpha=d ** -0.5)
        probs = scores.view(n, h, s, s).softmax(-1)
        y = torch.bmm(probs.view(n * h, s, s), v)
        y = y.view(n, h, s, d).permute(0, 2, 1, 3).reshape(n, s, c)
        return self.dense(y)


class PatchesInBatch(nn.Module):
    """MobileViT's unfolding: a feature map's channels and patch rows folded into the batch,
    transposed, unfolded to (N, C, patches, area), then the patch area folded for a
    transformer layer over the patches, and back."""

    def __init__(self, channels=8, patch=2):
        super().__init__()
        self.patch = patch
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.norm, self.mlp = nn.LayerNorm(channels), nn.Linear(channels, channels)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        p, nh, nw = self.patch, h // self.patch, w // self.patch
        x = x.reshape(n * c * nh, p, nw, p).transpose(1, 2)
        x = x.reshape(n, c, nh * nw, p * p).transpose(1, 3).reshape(n * p * p, -1, c)
        x = x + self.mlp(self.norm(x))
        x = x.contiguous().view(n, p * p, nh * nw, -1).transpose(1, 3)
        x = x.reshape(n * c * nh, nw, p, p).transpose(1, 2).reshape(n, c, h, w)
        return x.mean((2, 3))


@pytest.mark.parametrize("model, x", [
    (WindowAttention(), torch.randn(2, 8, 8, 16)),
    (Classifier(HeadsInBatch()), torch.randn(2, 8, 32)),
    (PatchesInBatch(), torch.randn(2, 3, 8, 8)),
], ids=["windows", "heads", "patches"])
def test_a_folded_batch_imports_with_the_batch_first(model, x):
    g = imported(model, x)
    assert all(op.out.shape[0] == 2 for op in g if op.kind != "input")


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 3), windows=st.integers(1, 3), window=st.integers(1, 3),
       heads=st.sampled_from([1, 2]))
def test_any_window_fold_keeps_the_batch_first_with_pytorchs_flops(batch, windows, window,
                                                                   heads):
    model = WindowAttention(side=windows * window, window=window, width=4 * heads,
                            heads=heads)
    x = torch.randn(batch, windows * window, windows * window, 4 * heads)
    g = from_torch(model, x)
    assert all(op.out.shape[0] == batch for op in g if op.kind != "input")
    assert matmul_flops(g) == pytest.approx(torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())


def test_the_folded_windows_keep_their_own_dimension():
    g = from_torch(WindowAttention(), torch.randn(2, 8, 8, 16))
    (softmax,) = [op for op in g if op.kind == "softmax"]
    assert softmax.out.shape == (2, 4, 2, 16, 16) and softmax.attrs["dim"] == 4
    assert g.op("qkv").out.shape == (2, 4, 16, 48)


class FoldedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        n, c, h, w = x.shape
        return self.conv(x.reshape(n * 2, c // 2, h, w)).reshape(n, c, h, w)


class SoftmaxOverFold(nn.Module):
    def forward(self, x):
        n, s, c = x.shape
        return x.reshape(n * 2, s // 2, c).softmax(0).reshape(n, s, c)


@pytest.mark.parametrize("model, why", [
    (FoldedConv(), "reads a tensor whose batch PyTorch folded with other dimensions "
                   "((4, 2, 4, 4) is (2, 2, 2, 4, 4))"),
    (SoftmaxOverFold(), "works along the dimension PyTorch folded the batch into"),
])
def test_what_a_fold_does_not_support_is_refused_naming_the_fold(model, why):
    x = torch.randn(2, 4, 4, 4) if isinstance(model, FoldedConv) else torch.randn(2, 4, 3)
    with pytest.raises(WorkloadError) as err:
        from_torch(model, x)
    assert why in str(err.value)


@pytest.mark.parametrize("library, name", [("transformers", "bloom"),
                                           ("timm", "swin_tiny_patch4_window7_224"),
                                           ("timm", "mobilevit_xxs")])
def test_the_libraries_folding_models_import_with_pytorchs_flops(library, name):
    imports_with_pytorchs_flops(library, name)


class GlobalQueryWindows(nn.Module):
    """GCViT's global attention: each image's global query (N, 2, 2, C) repeated over its
    windows with repeat_interleave along the batch, (N * windows, ...), the keys and values
    computed from the windows folded into the batch, the windows reversed after."""

    def __init__(self):
        super().__init__()
        self.q, self.kv, self.proj = nn.Linear(8, 8), nn.Linear(8, 16), nn.Linear(8, 8)

    def forward(self, x):                                            # (N, 4, 4, 8)
        n = x.shape[0]
        query = self.q(x[:, :2, :2, :])                              # (N, 2, 2, 8)
        w = x.view(n, 2, 2, 2, 2, 8).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, 8)
        k, v = self.kv(w).reshape(-1, 4, 2, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
        q = query.repeat_interleave(w.shape[0] // n, dim=0).reshape(-1, 4, 2, 4)
        y = ((q.permute(0, 2, 1, 3) @ k.transpose(-2, -1)).softmax(-1) @ v).transpose(1, 2)
        y = self.proj(y.reshape(-1, 4, 8)).view(n, 2, 2, 2, 2, 8)
        return y.permute(0, 1, 3, 2, 4, 5).reshape(n, 16, 8).mean(1)


def test_a_query_repeated_over_the_windows_of_its_image_is_one_copy_folded_with_them():
    torch.manual_seed(0)
    g = imported(GlobalQueryWindows(), torch.randn(2, 4, 4, 8))
    (copy,) = [op for op in g if op.kind == "repeat_heads"]
    assert copy.in_specs[0].shape == (2, 1, 4, 8) and copy.out.shape == (2, 4, 4, 8)
    assert copy.bytes_written == 2 * 4 * (2 * 2 * 8) * 4             # N x windows x query
    assert sorted(op.kind for op in lower_training(g) if op.kind.startswith("repeat_heads")) \
        == ["repeat_heads", "repeat_heads_grad"]                      # summed over windows


def test_repeat_interleave_once_is_a_copy():
    g = from_torch(nn.Sequential(nn.Linear(8, 8), _RepeatOnce()), torch.randn(2, 3, 8))
    assert [op.kind for op in g][-1] == "contiguous"


class _RepeatOnce(nn.Module):
    def forward(self, x):
        return x.repeat_interleave(1, dim=0)


class Unroll(nn.Module):
    """Hiera's unroll: the 2x2 strides of a 4x4 map moved into the batch twice (a view, a
    permute, then flatten(0, 2)), a layer on the folded tokens, the tokens back after it."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):                                            # (N, 16, 8)
        n, _, c = x.shape
        x, side = x.view(n, 4, 4, c), 4
        for _ in range(2):
            side //= 2
            x = x.view(-1, side, 2, side, 2, c).permute(0, 2, 4, 1, 3, 5).flatten(0, 2)
        return self.proj(x).reshape(n, 16, c)


def test_a_flatten_that_folds_strides_into_the_batch_is_that_reshape():
    torch.manual_seed(0)
    g = imported(Classifier(Unroll(), d=8), torch.randn(2, 16, 8))
    (proj,) = [op for op in g if op.name.endswith("proj")]
    assert proj.in_specs[0].shape == (2, 16, 1, 1, 8)                # (N * 16, 1, 1, 8)
    # the first flatten copies its permuted input; the second permutes dimensions of size 1
    # among the others, a view PyTorch flattens without a copy
    assert sum(op.kind == "contiguous" for op in g) == 1
