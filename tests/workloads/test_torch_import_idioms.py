"""Idioms of timm's and Hugging Face's models, written here as local replicas (the libraries
are not dependencies): each imports, with PyTorch's own convolution and matmul FLOPs
(torch.utils.flop_counter), and, where another spelling of the same layer imports, the same ops.
Models written the Hugging Face way as a whole are test_torch_import_hf's."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.graph_compare import costs  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.torch_import import from_torch  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def _same_flops(model, x, g):
    """PyTorch's count (its SDPA formula given to the CPU kernel) equals the graph's."""
    assert matmul_flops(g) == pytest.approx(torch_flops(model, x), rel=1e-9)


class Conv1D(nn.Module):
    """GPT-2's linear layer: the weight stored [in, out], applied to rows with addmm."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class RowsMLP(nn.Module):
    """OPT's MLP: the residual stream flattened to rows, a layer norm, two layers, the residual
    added on rows, and the view back."""

    def __init__(self, width=16):
        super().__init__()
        self.ln, self.fc1, self.fc2 = nn.LayerNorm(width), nn.Linear(width, 4 * width), \
            nn.Linear(4 * width, width)

    def forward(self, x):
        shape = x.shape
        h = x.reshape(-1, x.size(-1))
        return (h + self.fc2(F.relu(self.fc1(self.ln(h))))).view(shape)


def test_gpt2s_conv1d_is_the_linear_layer():
    x = torch.randn(2, 8, 16)
    conv1d = nn.Sequential(Conv1D(48, 16), nn.GELU(), Conv1D(16, 48))
    linear = nn.Sequential(nn.Linear(16, 48), nn.GELU(), nn.Linear(48, 16))
    g = from_torch(conv1d, x)
    assert costs(g) == costs(from_torch(linear, x))
    assert sum(op.params for op in g) == sum(p.numel() for p in conv1d.parameters())
    _same_flops(conv1d, x, g)


def test_layers_on_rows_keep_the_batch_first():
    x = torch.randn(2, 8, 16)
    g = from_torch(RowsMLP(), x)
    assert [op.out.shape for op in g.topo()][-1] == (2, 8, 16)
    assert {op.kind for op in g} >= {"layernorm", "linear", "add"}
    assert g.op("fc1").out.shape == (2, 8, 64)   # PyTorch's (16, 64) rows
    _same_flops(RowsMLP(), x, g)


class QKVAttention(nn.Module):
    """timm's attention: heads moved before the batch, then unbound (or indexed)."""

    def __init__(self, dim=32, heads=4, indexed=False):
        super().__init__()
        self.heads, self.indexed = heads, indexed
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = (qkv[0], qkv[1], qkv[2]) if self.indexed else qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class ChunkAttention(QKVAttention):
    """The same attention with the heads split after the batch."""

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = (t.reshape(B, N, self.heads, C // self.heads).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize("indexed", [False, True])
def test_heads_moved_before_the_batch_and_unbound_are_views(indexed):
    x = torch.randn(2, 8, 32)
    g = from_torch(QKVAttention(indexed=indexed), x)
    kinds = [op.kind for op in g]
    assert kinds.count("attention") == 1 and kinds.count("permute") == 4
    assert g.op(next(op.name for op in g if op.kind == "attention")).in_specs[0].shape == \
        (2, 4, 8, 8)
    # the same arithmetic as the heads chunked after the batch; only the views differ
    chunked = from_torch(ChunkAttention(), x)
    assert matmul_flops(g) == matmul_flops(chunked)
    assert sum(op.bytes_read for op in g if op.kind == "attention") == \
        sum(op.bytes_read for op in chunked if op.kind == "attention")
    _same_flops(QKVAttention(indexed=indexed), x, g)


def test_a_permute_that_moves_the_batch_and_stays_is_refused_by_its_reader():
    class Moved(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2)
    with pytest.raises(WorkloadError, match=r"moving the batch.*unbind\(0\)"):
        from_torch(Moved(), torch.randn(2, 3, 4))


class BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d: F.batch_norm on the module's own statistics, then an act."""

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)
        return F.relu(x)


class LayerScale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv, self.gamma = nn.Conv2d(c, c, 3, padding=1), nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x + self.conv(x).mul(self.gamma.reshape(1, -1, 1, 1))


def test_functional_batch_norm_and_a_reshaped_layer_scale():
    x = torch.randn(2, 8, 6, 6)
    g = from_torch(nn.Sequential(nn.Conv2d(8, 8, 1), BatchNormAct(8)), x)
    assert costs(g) == costs(from_torch(nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8),
                                                      nn.ReLU()), x))
    scaled = from_torch(LayerScale(8), x)
    (op,) = [op for op in scaled if op.kind == "layer_scale"]
    assert op.attrs["param_shape"] == (1, 8, 1, 1) and op.params == 8


def test_a_mean_over_tokens_is_a_permute_then_the_mean():
    class TokenMean(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            return self.fc(x).mean(dim=1)
    g = from_torch(TokenMean(), torch.randn(2, 8, 16))
    mean = g.topo()[-1]
    assert mean.kind == "mean" and mean.out.shape == (2, 16)
    assert g.op(mean.inputs[0]).kind == "permute"


def test_grouped_query_sdpa_repeats_the_key_and_value_heads():
    class GQA(nn.Module):
        def forward(self, x):
            q = x.view(2, 8, 4, 8).transpose(1, 2)
            kv = x[..., :16].reshape(2, 8, 2, 8).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
            return y.transpose(1, 2).reshape(2, 8, 32)
    x = torch.randn(2, 8, 32)
    g = from_torch(GQA(), x)
    assert [op.attrs["repeats"] for op in g if op.kind == "repeat_heads"] == [2, 2]
    (att,) = [op for op in g if op.kind == "attention"]
    assert att.attrs["causal"] and att.in_specs[1].shape == (2, 4, 8, 8)
    _same_flops(GQA(), x, g)


def test_an_sdpa_mask_gathered_from_a_table_holds_the_table():
    class LearnedBias(nn.Module):
        """T5's relative position bias: a learned table looked up by constants, as the mask."""

        def __init__(self):
            super().__init__()
            self.bias = nn.Embedding(8, 4)

        def forward(self, x):
            q = x.view(2, 8, 4, 8).transpose(1, 2)
            buckets = torch.arange(8)[:, None] - torch.arange(8)[None, :]
            mask = self.bias(buckets.abs()).permute(2, 0, 1).unsqueeze(0)
            y = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
            return y.transpose(1, 2).reshape(2, 8, 32)
    g = from_torch(LearnedBias(), torch.randn(2, 8, 32))
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 8 * 4 == g.params()


class PoolMixer(nn.Module):
    """PoolFormer's token mixer: a pool minus its input."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(4, 4, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x):
        y = self.conv(x)
        return self.pool(y) - y


def test_a_difference_of_tensors_is_the_sub_kind_and_its_gradient_negates():
    x = torch.randn(2, 4, 6, 6)
    g = from_torch(nn.Sequential(PoolMixer(), nn.Flatten(), nn.Linear(144, 3)), x)
    (diff,) = [op for op in g if op.kind == "sub"]
    train = lower_training(g)
    (grad,) = [op for op in train if op.kind == "sub_grad"]
    assert grad.out.shape == (2, 4, 6, 6) and grad.forward == diff.name
    from workloads.kinds import kind_of
    a, b = torch.randn(3, 5), torch.randn(3, 5, requires_grad=True)
    (a - b).backward(dy := torch.randn(3, 5))
    sub = kind_of("sub").torch_kernel(diff, None)
    assert torch.equal(sub(a, b.detach()), a - b.detach())
    assert torch.equal(kind_of("sub_grad").torch_kernel(grad, None)(dy), b.grad)


def test_a_learned_table_added_to_a_feature_map_is_a_position_embedding():
    class PiTStem(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 4, stride=4)
            self.pos_embed = nn.Parameter(torch.zeros(1, 8, 4, 4))

        def forward(self, x):
            return self.conv(x) + self.pos_embed
    g = from_torch(PiTStem(), torch.randn(2, 3, 16, 16))
    (pos,) = [op for op in g if op.kind == "position_embedding"]
    assert pos.params == 8 * 16 and pos.out.shape == (2, 8, 16)
    assert g.topo()[-1].out.shape == (2, 8, 4, 4)
    assert sum(op.params for op in g) == sum(p.numel() for p in PiTStem().parameters())


def test_same_padding_is_the_explicit_padding_where_it_is_symmetric():
    x = torch.randn(2, 4, 9, 9)
    same = from_torch(nn.Conv2d(4, 4, 5, padding="same", dilation=2), x)
    explicit = from_torch(nn.Conv2d(4, 4, 5, padding=4, dilation=2), x)
    assert costs(same) == costs(explicit)
    with pytest.raises(WorkloadError, match="the same on each side"):
        from_torch(nn.Conv2d(4, 4, 4, padding="same"), x)


class OffsetBiasAttention(nn.Module):
    """LeViT's and EfficientFormer's attention: a learned (heads, P) table of offsets read at
    a buffer index and added to the scores; LeViT's linear layers normalise their rows with
    BatchNorm1d of the batch and tokens flattened together."""

    def __init__(self, tokens=9, heads=2, dim=8):
        super().__init__()
        self.heads = heads
        self.qkv, self.bn = nn.Linear(dim, 3 * dim, bias=False), nn.BatchNorm1d(3 * dim)
        self.biases = nn.Parameter(torch.zeros(heads, tokens))
        idx = torch.arange(tokens)
        self.register_buffer("idxs", (idx[:, None] - idx[None, :]).abs(), persistent=False)

    def forward(self, x):
        n, t, c = x.shape
        y = self.qkv(x)
        qkv = self.bn(y.flatten(0, 1)).reshape_as(y)
        q, k, v = qkv.view(n, t, self.heads, -1).permute(0, 2, 1, 3).split([4, 4, 4], dim=3)
        scores = q @ k.transpose(-2, -1) * 0.5 + self.biases[:, self.idxs]
        return (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, t, c)


def test_an_offset_table_read_at_a_buffer_index_is_an_attention_bias():
    model, x = OffsetBiasAttention(), torch.randn(2, 9, 8)
    g = from_torch(model, x)
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 2 * 9 and bias.out.shape == (2, 2, 9, 9)
    (bn,) = [op for op in g if op.kind == "batchnorm"]
    assert bn.params == 2 * 24 and bn.out.shape == (2, 24, 9)   # the rows' features
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())
    _same_flops(model, x, g)
    train = lower_training(from_torch(nn.Sequential(model, nn.Flatten(), nn.Linear(72, 3)), x))
    assert any(op.kind == "attention_bias_grad" for op in train)


@pytest.mark.parametrize("layout", ["heads_positions", "positions_heads"])
def test_the_attention_bias_kernels_are_autograds(layout):
    from workloads.graph import Op, TensorSpec
    from workloads.kinds import kind_of
    shape = (2, 5) if layout == "heads_positions" else (5, 2)
    table = torch.randn(*shape, requires_grad=True)
    attrs = {"queries": 4, "keys": 3, "table_shape": shape, "table_layout": layout}
    fwd = Op("b", "attention_bias", ("x",), (TensorSpec((3, 2, 4, 3), 4),),
             TensorSpec((3, 2, 4, 3), 4), attrs=attrs, params=10)
    grad = Op("b.grad", "attention_bias_grad", ("dy",), (fwd.out,), TensorSpec((10,), 4),
              attrs=attrs, phase="backward", forward="b")

    class State:
        grads: dict = {}

        def params_of(self, op):
            return [table]
    x, dy = torch.randn(3, 2, 4, 3), torch.randn(3, 2, 4, 3)
    y = kind_of("attention_bias").torch_kernel(fwd, State())(x)
    y.backward(dy)
    index = (torch.arange(4)[:, None] + torch.arange(3)[None, :]) % 5
    offsets = table[:, index] if layout == "heads_positions" else table[index].permute(2, 0, 1)
    assert torch.allclose(y, x + offsets)
    assert torch.allclose(kind_of("attention_bias_grad").torch_kernel(grad, State())(dy),
                          table.grad)


class ConstantProducts(nn.Module):
    """Products with constant matrices: a fixed basis applied on the left of (N, K, L) maps and
    fixed class prototypes on the right, one transposed as it is stored."""

    def __init__(self, k=12, n=6, length=10):
        super().__init__()
        self.proj = nn.Linear(length, length)
        self.register_buffer("basis", torch.randn(k, k))
        self.register_buffer("prototypes", torch.randn(n, length))

    def forward(self, x):
        return (self.basis @ self.proj(x)) @ self.prototypes.t()


def test_products_with_constant_matrices_are_gemms_without_parameters():
    """Either side: one constant_matmul each, no parameters beyond the layer's, a gradient
    into the layer's output."""
    model, x = ConstantProducts(), torch.randn(2, 12, 10)
    g = from_torch(model, x)
    _same_flops(model, x, g)
    assert [op.out.shape for op in g if op.kind == "constant_matmul"] == [(2, 10, 12),
                                                                           (2, 12, 6)]
    assert g.params() == sum(p.numel() for p in model.parameters())
    trained = lower_training(g)
    assert len([op for op in trained if op.kind == "constant_matmul_grad"]) == 2


def test_the_per_sample_takes_kernels_are_autograds():
    from tests.workloads.test_torch_import_user_kinds import _kernel, _op
    from workloads.kinds.gather import _positions
    take, _ = _kernel("take_per_sample", [(4, 6, 5)], (4, 5))
    grad, _ = _kernel("take_per_sample_grad", [(4, 5)], (4, 6, 5))
    rows, positions = _positions(_op("take_per_sample", [(4, 6, 5)], (4, 5)))
    x = torch.randn(4, 6, 5, requires_grad=True)
    x[rows, positions].backward(dy := torch.randn(4, 5))
    assert torch.equal(take(x.detach()), x.detach()[rows, positions])
    assert torch.equal(grad(dy), x.grad)


def test_k_rows_per_sample_kernels_are_autograds():
    """ViT-MAE's gather of the kept patches: K distinct rows of each sample's own."""
    from tests.workloads.test_torch_import_user_kinds import _kernel, _op
    from workloads.kinds.gather import _positions
    take, _ = _kernel("take_per_sample", [(4, 6, 5)], (4, 3, 5), rows=3)
    grad, _ = _kernel("take_per_sample_grad", [(4, 3, 5)], (4, 6, 5), rows=3)
    rows, positions = _positions(_op("take_per_sample", [(4, 6, 5)], (4, 3, 5), rows=3))
    assert all(len(set(p.tolist())) == 3 for p in positions)   # a shuffle's: distinct
    x = torch.randn(4, 6, 5, requires_grad=True)
    x[rows, positions].backward(dy := torch.randn(4, 3, 5))
    assert torch.equal(take(x.detach()), x.detach()[rows, positions])
    assert torch.equal(grad(dy), x.grad)


class RandomMasking(nn.Module):
    """ViT-MAE's random masking: the patches of each sample shuffled by argsort of noise, the
    first K kept by torch.gather."""

    def __init__(self, width=8, keep=4):
        super().__init__()
        self.proj, self.head, self.keep = nn.Linear(width, width), nn.Linear(width, 3), keep

    def forward(self, x):
        x = self.proj(x)
        n, length, d = x.shape
        shuffle = torch.argsort(torch.rand(n, length, device=x.device), dim=1)
        kept = torch.gather(x, 1, shuffle[:, :self.keep].unsqueeze(-1).repeat(1, 1, d))
        return self.head(kept.mean(1))


def test_a_gather_by_a_per_sample_shuffle_takes_k_rows_per_sample():
    model, x = RandomMasking(), torch.randn(2, 10, 8)
    g = from_torch(model, x)
    _same_flops(model, x, g)
    (take,) = [op for op in g if op.kind == "take_per_sample"]
    assert take.out.shape == (2, 4, 8) and take.attrs["rows"] == 4
    assert take.bytes_read == take.out.nbytes   # the rows kept, whichever they are
    trained = lower_training(g)
    assert [op.out.shape for op in trained if op.kind == "take_per_sample_grad"] == [(2, 10, 8)]
    assert sum(op.params for op in trained.phase("update")) == g.params()
