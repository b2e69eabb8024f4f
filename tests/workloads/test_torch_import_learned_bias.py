"""Learned attention biases import: a table gathered at a constant index and passed to
F.scaled_dot_product_attention as its mask (T5's relative position buckets, BEiT's relative
position bias; TinyViT's `biases[:, index]`; MaxViT-TF's table contracted with one-hot
lookups by einsum) is PyTorch's math path with one attention_bias op holding the table, and a
bias joined from learned and constant pieces (BEiT's qkv bias) is the linear layer's bias.
Written here as small modules; the libraries' own models import where they are installed."""
import copy

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.workloads.test_torch_import_transformers import Classifier, imported  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops, torch_flops  # noqa: E402
from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class BucketBiasAttention(nn.Module):
    """T5's way: a (buckets, heads) nn.Embedding looked up by bucket ids computed from the
    positions, permuted to (1, heads, S, S) and passed as the SDPA mask; a second layer reuses
    the first layer's bias (T5 hands it on from block to block)."""

    def __init__(self, width=32, heads=4, buckets=8):
        super().__init__()
        self.heads, self.buckets = heads, buckets
        self.qkv = nn.ModuleList(nn.Linear(width, 3 * width, bias=False) for _ in range(2))
        self.relative_attention_bias = nn.Embedding(buckets, heads)

    def forward(self, x):
        n, s, c = x.shape
        position = torch.arange(s)
        relative = (position[None, :] - position[:, None]).abs().clamp(max=self.buckets - 1)
        bias = self.relative_attention_bias(relative).permute(2, 0, 1).unsqueeze(0)
        for qkv in self.qkv:
            q, k, v = qkv(x).view(n, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
            x = x + y.transpose(1, 2).reshape(n, s, c)
        return x


class TableBiasAttention(nn.Module):
    """BEiT's way: a (P, heads) table read at a buffer index over the patches and the class
    token, viewed (T, T, heads), permuted and passed as the SDPA mask; the qkv bias is
    cat(q_bias, a zero buffer, v_bias), the keys' part fixed at zero."""

    def __init__(self, window=3, width=32, heads=4):
        super().__init__()
        self.heads, tokens = heads, window * window + 1
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.randn(width))
        self.register_buffer("k_bias", torch.zeros(width), persistent=False)
        self.v_bias = nn.Parameter(torch.randn(width))
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2 + 3, heads))
        self.register_buffer("index", torch.randint(0, self.table.shape[0], (tokens, tokens)),
                             persistent=False)

    def forward(self, x):
        n, t, c = x.shape
        qkv_bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = qkv.reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.table[self.index.view(-1)].view(t, t, -1).permute(2, 0, 1).contiguous()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        return y.transpose(1, 2).reshape(n, t, c)


def test_a_bucket_bias_passed_as_the_sdpa_mask_is_the_math_path_with_one_table():
    model = Classifier(BucketBiasAttention())
    g = imported(model, torch.randn(2, 12, 32))
    biases = [op for op in g if op.kind == "attention_bias"]
    assert len(biases) == 2 and all(op.out.shape == (2, 4, 12, 12) for op in biases)
    assert [op.params for op in biases] == [8 * 4, 0]   # the second reads the first's table
    assert biases[0].attrs["table_layout"] == "positions_heads"
    assert biases[0].attrs["index"] == "constant"
    # the math path: q and k^T scaled, two products and a softmax per layer, no fused kernel
    kinds = [op.kind for op in g]
    assert "attention" not in kinds and kinds.count("softmax") == 2
    assert kinds.count("batched_matmul") == 4 and kinds.count("scalar") == 4
    train = lower_training(g)
    grads = [op for op in train if op.kind == "attention_bias_grad"]
    assert len(grads) == 2 and all(op.out.numel == 8 * 4 for op in grads)
    # one update of the table, reading the sum of both layers' gradients
    assert sum(op.params for op in train.phase("update")) == g.params()


def test_a_table_bias_with_a_class_token_and_a_joined_qkv_bias_imports():
    model = Classifier(TableBiasAttention())
    g = imported(model, torch.randn(2, 10, 32))
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 28 * 4 and bias.attrs["index"] == "constant"   # 28 = 5 * 5 + 3
    (qkv,) = [op for op in g if op.kind == "linear" and op.attrs["out_features"] == 96]
    assert qkv.attrs["bias"] and qkv.params == 96 * 32 + 2 * 32   # the zero keys' part is not
    assert qkv.bytes_read >= (96 * 32 + 96) * 4                  # held, but it is read


def test_a_window_table_as_the_sdpa_mask_reads_the_windows_relative_index():
    model = TableBiasAttention(window=3)
    model.table = nn.Parameter(torch.randn(25, 4))   # ((2s-1)^2, heads) over s*s tokens
    model.index = model.index[1:, 1:] % 25
    g = from_torch(model, torch.randn(2, 9, 32))
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.attrs["index"] == "window" and bias.attrs["table_shape"] == (25, 4)


def _one_hot_lookup(window: int) -> torch.Tensor:
    """MaxViT-TF's (s, s, 2s - 1) lookup: [i, x, i - x + s - 1] = 1."""
    lookup = torch.zeros(window, window, 2 * window - 1)
    for i in range(window):
        for x in range(window):
            lookup[i, x, i - x + window - 1] = 1
    return lookup


class EinsumLookupBias(nn.Module):
    """MaxViT-TF's relative position bias (timm's RelPosBiasTf): a learned (heads, 2s - 1,
    2s - 1) table contracted with one-hot height and width lookups by two einsums, reshaped
    to (heads, s * s, s * s) and passed as the SDPA mask."""

    def __init__(self, window=3, width=32, heads=4):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(width, 3 * width)
        self.table = nn.Parameter(torch.randn(heads, 2 * window - 1, 2 * window - 1))
        self.register_buffer("height", _one_hot_lookup(window), persistent=False)
        self.register_buffer("width", _one_hot_lookup(window), persistent=False)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = torch.einsum("nhw,ixh->nixw", self.table, self.height)
        bias = torch.einsum("nixw,jyw->nijxy", bias, self.width).reshape(self.heads, t, t)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return y.transpose(1, 2).reshape(n, t, c)


class IndexedBiasSdpa(nn.Module):
    """TinyViT's attention bias: a learned (heads, P) table read at a buffer index,
    `biases[:, index]`, passed as the SDPA mask."""

    def __init__(self, tokens=9, width=32, heads=4, offsets=5):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.biases = nn.Parameter(torch.randn(heads, offsets))
        self.register_buffer("index", torch.randint(0, offsets, (tokens, tokens)),
                             persistent=False)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.biases[:, self.index])
        return y.transpose(1, 2).reshape(n, t, c)


def test_a_table_read_by_one_hot_einsum_lookups_is_one_attention_bias():
    model, x = Classifier(EinsumLookupBias(window=3)), torch.randn(2, 9, 32)
    g = from_torch(model, x)
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 4 * 5 * 5 and bias.attrs["table_shape"] == (4, 25)
    assert bias.out.shape == (2, 4, 9, 9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert "guessed_on_meta" not in g.meta   # the lookups' values were read: one-hot
    # PyTorch's counter also counts the one-hot products, which gather the table: heads x
    # 3 x 3 x 5 x 5 multiply-adds, then heads x 9 x 9 x 5; the graph costs the gather
    lookups = 2 * 4 * (9 * 5 * 5 + 81 * 5)
    meta = copy.deepcopy(model).to("meta").train()
    assert matmul_flops(g) + lookups == torch_flops(meta, x.to("meta"))
    assert tuple(GraphModule(g)(x).shape) == tuple(model(x).shape)
    train = lower_training(g)
    (grad,) = [op for op in train if op.kind == "attention_bias_grad"]
    assert grad.out.numel == 4 * 25
    assert sum(op.params for op in train.phase("update")) == g.params()


def test_einsum_lookups_on_the_meta_device_say_they_were_taken_as_one_hot():
    with torch.device("meta"):
        model = Classifier(EinsumLookupBias(window=3))
        g = from_torch(model, torch.randn(2, 9, 32))
    assert [op.kind for op in g].count("attention_bias") == 1
    assert g.meta["guessed_on_meta"] == ["the lookup 'body.height' taken as one-hot (a gather)",
                                         "the lookup 'body.width' taken as one-hot (a gather)"]


def test_a_lookup_that_is_not_one_hot_is_refused():
    body = EinsumLookupBias(window=3)
    body.height = body.height * 0.5
    with pytest.raises(WorkloadError) as err:
        from_torch(Classifier(body), torch.randn(2, 9, 32))
    assert "buffer 'body.height'" in str(err.value) and "not a one-hot lookup" in str(err.value)


def test_a_table_read_at_a_buffer_index_as_the_sdpa_mask_is_one_attention_bias():
    g = imported(Classifier(IndexedBiasSdpa()), torch.randn(2, 9, 32))
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 4 * 5 and bias.attrs["table_shape"] == (4, 5)
    assert "attention" not in [op.kind for op in g]   # the math path, as PyTorch runs it


class LinearMask(nn.Module):
    """A mask computed by a layer from constants: learned, but not a gathered table."""

    def __init__(self):
        super().__init__()
        self.qkv, self.mask = nn.Linear(32, 96), nn.Linear(8, 8)

    def forward(self, x):
        n, s, _ = x.shape
        q, k, v = self.qkv(x).view(n, s, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
        mask = self.mask(torch.ones(s, s))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_another_learned_mask_is_refused_by_name():
    with pytest.raises(WorkloadError) as err:
        from_torch(LinearMask(), torch.randn(2, 8, 32))
    assert "adds a mask computed from parameter 'mask'" in str(err.value)


def _sweep_case(library: str, name: str):
    """The sweep's own build of a model (its configs; it imports the libraries as they need),
    or a skip where the library is not installed."""
    from benchmarks import import_sweep
    cases = getattr(import_sweep, f"{library}_cases")()
    if cases is None:
        pytest.skip(f"{library} is not installed")
    return dict(cases)[name]()


def imports_with_pytorchs_flops(library: str, name: str) -> None:
    """The sweep's check on its own build of the model: PyTorch's convolution and matmul FLOPs
    within 2% and the module's parameters."""
    from benchmarks.import_sweep import measure
    model, x = _sweep_case(library, name)
    found = measure(model, x, name)
    assert not isinstance(found, str), found
    got, expected, params = found
    assert got == pytest.approx(expected, rel=0.02)
    assert params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("library, name", [("transformers", "t5"),
                                           ("timm", "beit_base_patch16_224"),
                                           ("timm", "maxvit_tiny_tf_224"),
                                           ("timm", "tiny_vit_5m_224")])
def test_the_libraries_models_import_with_pytorchs_flops(library, name):
    imports_with_pytorchs_flops(library, name)
