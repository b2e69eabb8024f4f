"""from_torch on constructs of timm's and Hugging Face's models, each in a small module: a
computed tensor expanded where only arithmetic reads it (ECA, MobileViT-v2), ResNeSt's sum over
its radix splits, learned tokens of (1, T, D) beside the sequence (registers, YOLOS's detection
tokens) or between slices of it (Hugging Face's DINOv2 registers); what stays refused, by
name."""
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def imports_as_pytorch_counts(model, x):
    """The graph of `model` on `x`, checked against PyTorch's FLOPs and parameters, and
    trained: every parameter updated once."""
    model = model.eval()
    g = from_torch(model, x)
    assert matmul_flops(g) == torch_flops(model, x)
    params = sum(p.numel() for p in model.parameters())
    assert g.params() == params
    assert sum(op.params for op in lower_training(g).phase("update")) == params
    return g


class ECA(nn.Module):
    """timm's efficient channel attention: a gate of (N, C, 1, 1) expanded to x's shape."""

    def __init__(self, channels=16, through="expand_as"):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.gate = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.fc = nn.Linear(channels, 5)
        self.through = through

    def forward(self, x):
        x = self.conv(x)
        y = x.mean((2, 3), keepdim=True)
        y = self.gate(y.view(x.shape[0], 1, -1)).view(x.shape[0], -1, 1, 1).sigmoid()
        y = y.expand_as(x) if self.through == "expand_as" else y.expand(-1, -1, *x.shape[2:])
        return self.fc((x * y).mean((2, 3)))


@pytest.mark.parametrize("through", ["expand_as", "expand"])
def test_an_expanded_gate_read_by_arithmetic_is_the_broadcast_product(through):
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(ECA(through=through), torch.randn(2, 3, 8, 8))
    product = g.op("mul")
    assert product.kind == "mul" and product.out.shape == (2, 16, 8, 8)
    assert sorted(s.shape for s in product.in_specs) == [(2, 16, 1, 1), (2, 16, 8, 8)]
    assert not any(op.kind in ("expand", "repeat") for op in g)     # a view: no copy


class ExpandedIntoProduct(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):   # (N, 1, 8) expanded to (N, 4, 8), then a product reads it
        y = self.fc(x).expand(-1, 4, -1)
        return torch.matmul(y, y.transpose(1, 2))


def test_an_expanded_tensor_another_op_reads_stays_refused_by_name():
    with pytest.raises(WorkloadError, match="Tensor.expand at module path '<top>': expands a "
                                            "computed tensor"):
        from_torch(ExpandedIntoProduct().eval(), torch.randn(2, 1, 8))


class SplitAttention(nn.Module):
    """ResNeSt's split attention: a convolution of radix x C channels seen as (N, radix, C,
    H, W), summed over the radix, a gate per split, the weighted splits summed again."""

    def __init__(self, channels=16, radix=2):
        super().__init__()
        self.radix = radix
        self.conv = nn.Conv2d(3, channels * radix, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(channels, 8, 1), nn.Conv2d(8, channels * radix, 1)

    def forward(self, x):
        x = self.conv(x)
        n, rc, h, w = x.shape
        x = x.reshape((n, self.radix, rc // self.radix, h, w))
        gap = x.sum(dim=1).mean((2, 3), keepdim=True)
        attn = self.fc2(F.relu(self.fc1(gap))).view(n, 1, self.radix, -1).transpose(1, 2)
        attn = F.softmax(attn, dim=1).reshape(n, -1)
        return (x * attn.reshape((n, self.radix, rc // self.radix, 1, 1))).sum(dim=1)


def test_a_sum_over_the_splits_of_a_convolution_is_a_sum_over_that_dimension():
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(SplitAttention(), torch.randn(2, 3, 8, 8))
    sums = [op for op in g if op.kind == "sum"]
    assert [op.in_specs[0].shape for op in sums] == [(2, 16, 8, 8, 2)] * 2   # radix last
    assert all(op.out.shape == (2, 16, 8, 8) for op in sums)


class Tokens(nn.Module):
    """Patches, then learned tokens put beside them as `layout` says, then a head on the
    first token."""

    def __init__(self, layout, width=16, registers=4):
        super().__init__()
        self.layout = layout
        self.patches = nn.Conv2d(3, width, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, width))
        self.registers = nn.Parameter(torch.randn(1, registers, width))
        self.block = nn.TransformerEncoderLayer(width, 2, 32, batch_first=True, dropout=0.0)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        n = x.shape[0]
        cls, reg = self.cls.expand(n, -1, -1), self.registers.expand(n, -1, -1)
        if self.layout == "before":          # timm's class token and registers
            x = torch.cat([cls, reg, x], dim=1)
        elif self.layout == "after":         # YOLOS's detection tokens
            x = torch.cat([cls, x, reg], dim=1)
        else:                                # Hugging Face's DINOv2 registers
            x = torch.cat([cls, x], dim=1)
            x = torch.cat([x[:, :1], reg, x[:, 1:]], dim=1)
        return self.head(self.block(x)[:, 0])


@pytest.mark.parametrize("layout", ["before", "after", "between"])
def test_learned_tokens_beside_the_sequence_are_one_class_token_copy(layout):
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(Tokens(layout), torch.randn(2, 3, 16, 16))
    ops = [op for op in g if op.kind == "class_token"]
    assert sum(op.params for op in ops) == 16 * 5     # the class token and four registers
    assert ops[-1].out.shape == (2, 21, 16)


class SlicesOutOfOrder(Tokens):
    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        reg = self.registers.expand(x.shape[0], -1, -1)
        return self.head(torch.cat([x[:, 1:], reg, x[:, :1]], dim=1)[:, 0])


def test_tokens_between_pieces_that_are_not_the_sequence_in_order_stay_refused():
    with pytest.raises(WorkloadError, match="torch.cat at module path '<top>'"):
        from_torch(SlicesOutOfOrder("between").eval(), torch.randn(2, 3, 16, 16))


class StringPadding(nn.Module):
    """Hugging Face's EfficientNet: F.conv2d with padding 'same' and 'valid'; a Conv1d
    with padding 'same'."""

    def __init__(self):
        super().__init__()
        self.w3, self.w5 = nn.Parameter(torch.randn(8, 1, 3, 3)), nn.Parameter(
            torch.randn(8, 1, 5, 5))
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.seq = nn.Conv1d(8, 8, 5, padding="same", dilation=2)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.conv2d(self.stem(x), self.w3, padding="same", groups=8)
        x = F.conv2d(x, self.w5, padding="valid", groups=8)
        return self.head(self.seq(x.flatten(2)).mean(-1))


def test_string_padding_is_the_explicit_padding_it_stands_for():
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(StringPadding(), torch.randn(2, 3, 16, 16))
    convs = [op for op in g if op.kind == "conv2d"]
    assert [op.out.shape for op in convs] == [(2, 8, 8, 8), (2, 8, 8, 8), (2, 8, 4, 4),
                                              (2, 8, 1, 16)]


class EvenSame(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, 4, 4))

    def forward(self, x):   # an even kernel: PyTorch pads one side more
        return F.conv2d(x, self.w, padding="same").mean((2, 3))


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_same_padding_of_an_even_kernel_stays_refused_by_name():
    with pytest.raises(WorkloadError, match="has padding 'same'; only zero padding"):
        from_torch(EvenSame().eval(), torch.randn(2, 3, 8, 8))


class ExpandedBucketBias(nn.Module):
    """MPNet's relative position bias: a (buckets, heads) table looked up by buckets computed
    from constants, expanded over the batch, made contiguous once and added to the scores of
    every layer; `scaled` multiplies it first, which no op models."""

    def __init__(self, width=16, heads=2, layers=2, scaled=False):
        super().__init__()
        self.heads, self.scaled = heads, scaled
        self.table = nn.Embedding(8, heads)
        self.qkv = nn.ModuleList(nn.Linear(width, 3 * width) for _ in range(layers))
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        n, s, d = x.shape
        pos = torch.arange(s, device=x.device)
        buckets = (pos[None, :] - pos[:, None]).abs().clamp(max=7)
        bias = self.table(buckets).permute(2, 0, 1).unsqueeze(0)
        bias = bias.expand(n, -1, s, s).contiguous()
        if self.scaled:
            bias = bias * 2.0
        for qkv in self.qkv:
            q, k, v = qkv(x).view(n, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) + bias
            x = x + (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, s, d)
        return self.head(x[:, 0])


def test_a_gathered_bias_expanded_over_the_batch_is_one_attention_bias_table():
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(ExpandedBucketBias(), torch.randn(2, 6, 16))
    biases = [op for op in g if op.kind == "attention_bias"]
    assert [op.params for op in biases] == [8 * 2, 0]     # one table, held once
    assert all(op.out.shape == (2, 2, 6, 6) for op in biases)


def test_other_arithmetic_on_a_gathered_table_is_refused_not_dropped():
    with pytest.raises(WorkloadError, match="_operator.mul at module path '<top>'"):
        from_torch(ExpandedBucketBias(scaled=True).eval(), torch.randn(2, 6, 16))


class ErfGelu(nn.Module):
    """ESM's GELU written out: x * 0.5 * (1 + erf(x / sqrt(2)))."""

    def __init__(self, special=False):
        super().__init__()
        self.up, self.down = nn.Linear(16, 32), nn.Linear(32, 5)
        self.erf = torch.special.erf if special else torch.erf

    def forward(self, x):
        h = self.up(x)
        return self.down(h * 0.5 * (1.0 + self.erf(h / 2.0 ** 0.5)))


@pytest.mark.parametrize("special", [False, True])
def test_erf_is_one_pointwise_op_whose_gradient_reads_its_input(special):
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(ErfGelu(special), torch.randn(2, 8, 16))
    erf = [op for op in g if op.kind == "erf"]
    assert len(erf) == 1 and erf[0].out.shape == (2, 8, 32)
    grads = [op for op in lower_training(g) if op.kind == "erf_grad"]
    assert len(grads) == 1 and grads[0].out.shape == (2, 8, 32)


def test_erfs_kernels_are_what_autograd_computes():
    from workloads.kinds import kind_of
    x, dy = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)
    x.requires_grad_(True)
    torch.erf(x).backward(dy)
    forward, backward = (kind_of(k).torch_kernel for k in ("erf", "erf_grad"))
    op = type("Op", (), {"kind": "erf"})()
    grad_op = type("Op", (), {"kind": "erf_grad"})()
    assert torch.equal(forward(op, None)(x.detach()), torch.erf(x.detach()))
    assert torch.allclose(backward(grad_op, None)(dy, x.detach()), x.grad)


class MultiQuery(nn.Module):
    """timm's MobileNetV4 multi-query attention: four query heads, one key and value head
    that F.scaled_dot_product_attention broadcasts over them."""

    def __init__(self, width=32, heads=4):
        super().__init__()
        self.heads, self.d = heads, width // heads
        self.q, self.kv = nn.Linear(width, width), nn.Linear(width, 2 * self.d)
        self.out = nn.Linear(width, 5)

    def forward(self, x):
        n, s, _ = x.shape
        q = self.q(x).view(n, s, self.heads, self.d).transpose(1, 2)
        k, v = self.kv(x).view(n, s, 1, 2 * self.d).transpose(1, 2).chunk(2, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(n, s, -1))


def test_one_key_head_broadcast_over_the_query_heads_is_repeated_as_gqa_is():
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(MultiQuery(), torch.randn(2, 8, 32))
    repeats = [op for op in g if op.kind == "repeat_heads"]
    assert [op.out.shape for op in repeats] == [(2, 4, 8, 8)] * 2
    assert [op.kind for op in g if op.kind == "attention"] == ["attention"]


class Outlook(nn.Module):
    """VOLO's outlook attention reduced to its layout: a map unfolded into 3x3 blocks, each
    block's values mixed by a learned product, and folded back, overlapping values summed."""

    def __init__(self, channels=8, module=False):
        super().__init__()
        self.v = nn.Conv2d(3, channels, 1)
        self.mix = nn.Linear(9, 9)
        self.fold = nn.Fold((8, 8), 3, padding=1) if module else None
        self.head = nn.Linear(channels, 5)

    def forward(self, x):
        n = x.shape[0]
        cols = F.unfold(self.v(x), 3, padding=1).view(n, -1, 9, 64).transpose(2, 3)
        cols = self.mix(cols).transpose(2, 3).reshape(n, -1, 64)
        y = self.fold(cols) if self.fold is not None else F.fold(cols, (8, 8), 3, padding=1)
        return self.head(y.mean((2, 3)))


@pytest.mark.parametrize("module", [False, True])
def test_fold_sums_columns_back_into_the_map_and_its_gradient_unfolds(module):
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(Outlook(module=module), torch.randn(2, 3, 8, 8))
    fold = [op for op in g if op.kind == "fold"]
    assert len(fold) == 1 and fold[0].out.shape == (2, 8, 8, 8)
    assert fold[0].flops == 2 * 8 * 9 * 64                   # one addition per column value
    grads = [op for op in lower_training(g) if op.kind == "fold_grad"]
    assert len(grads) == 1 and grads[0].out.shape == (2, 8 * 9, 64)


def test_folds_kernels_are_what_autograd_computes():
    from workloads.kinds import kind_of
    g = from_torch(Outlook().eval(), torch.randn(2, 3, 8, 8))
    op = next(op for op in g if op.kind == "fold")
    cols = torch.randn(2, 72, 64, dtype=torch.float64, requires_grad=True)
    y = F.fold(cols, (8, 8), 3, padding=1)
    dy = torch.randn_like(y)
    y.backward(dy)
    assert torch.equal(kind_of("fold").torch_kernel(op, None)(cols.detach()), y.detach())
    grad = type("Op", (), {"kind": "fold_grad", "attrs": op.attrs, "out": op.in_specs[0]})()
    assert torch.equal(kind_of("fold_grad").torch_kernel(grad, None)(dy), cols.grad)


class MAEEmbeddings(nn.Module):
    """Hugging Face's ViT-MAE embeddings: patches plus the position table's rows past the class
    token's (pos[:, 1:]), K patches of each sample kept by a per-sample shuffle, then the class
    token plus the table's row 0 expanded over the batch before them."""

    def __init__(self, width=16, patches=16, keep=4):
        super().__init__()
        self.patch = nn.Conv2d(3, width, 2, stride=2)
        self.pos = nn.Parameter(torch.randn(1, patches + 1, width))
        self.cls = nn.Parameter(torch.randn(1, 1, width))
        self.head, self.keep = nn.Linear(width, 5), keep

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos[:, 1:, :]
        n, length, d = x.shape
        shuffle = torch.argsort(torch.rand(n, length, device=x.device), dim=1)
        x = torch.gather(x, 1, shuffle[:, :self.keep].unsqueeze(-1).repeat(1, 1, d))
        token = (self.cls + self.pos[:, :1, :]).expand(n, -1, -1)
        return self.head(torch.cat((token, x), dim=1)[:, 0])


def test_vit_maes_embeddings_import_with_each_parameter_updated_once():
    torch.manual_seed(0)
    g = imports_as_pytorch_counts(MAEEmbeddings(), torch.randn(2, 3, 8, 8))
    table = [op for op in g if op.kind == "position_embedding"]
    assert [(op.params, op.attrs["first_row"]) for op in table] == [(17 * 16, 1)]
    assert [(op.out.shape, op.params) for op in g if op.kind == "take_per_sample"] == \
        [((2, 4, 16), 0)]
    assert [(op.out.shape, op.params) for op in g if op.kind == "class_token"] == \
        [((2, 5, 16), 16)]


def test_a_token_plus_rows_of_a_table_read_nowhere_else_is_refused_naming_both():
    class Unheld(MAEEmbeddings):
        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            token = (self.cls + self.pos[:, :1, :]).expand(x.shape[0], -1, -1)
            return self.head(torch.cat((token, x), dim=1)[:, 0])
    with pytest.raises(WorkloadError, match=r"adds rows of parameter 'pos' to the token 'cls'"):
        from_torch(Unheld(), torch.randn(2, 3, 8, 8))
