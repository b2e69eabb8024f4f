"""from_torch on attention and transformers: nn.MultiheadAttention, nn.TransformerEncoderLayer
/ DecoderLayer and their stacks, nn.Embedding, F.scaled_dot_product_attention, attention
written by hand (matmul, softmax, masking), ViT's class token and position table, ConvNeXt's
layer scale. Each against PyTorch's own FLOP count (products and fused attention) and
parameter count, and trained."""
import copy
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads.torchvision_zoo import matmul_flops, torch_flops  # noqa: E402
from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def imported(model, x):
    """The graph, checked against PyTorch's FLOPs and parameters, and lowered for training."""
    g = from_torch(model, x)
    # counted in training mode: in eval mode nn.MultiheadAttention takes a fused inference
    # kernel that PyTorch's counter does not count
    # and on the meta device, where F.scaled_dot_product_attention runs as the two products
    # the counter counts (it counts none for the CPU's fused kernel)
    meta = copy.deepcopy(model).to("meta").train()
    assert matmul_flops(g) == pytest.approx(torch_flops(meta, x.to("meta")), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert g.topo()[-1].out.shape == tuple(model(x).shape)
    assert tuple(GraphModule(g)(x).shape) == tuple(model(x).shape)   # PyTorch replays it
    train = lower_training(g)
    assert sum(op.params for op in train.phase("update")) == g.params()
    return g


class Classifier(nn.Module):
    """A sequence body, a mean over the sequence (a slice of the first token), a head."""

    def __init__(self, body, d=32):
        super().__init__()
        self.body, self.head = body, nn.Linear(d, 10)

    def forward(self, x):
        y = self.body(x)
        y = y[0] if isinstance(y, tuple) else y
        return self.head(y[:, 0])


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_self_attention(need_weights):
    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=need_weights)[0]
    g = imported(Classifier(Body()), torch.randn(2, 6, 32))
    kinds = [op.kind for op in g if not op.is_view]
    if need_weights:   # the explicit path: products, softmax
        assert kinds.count("batched_matmul") == 2 and "softmax" in kinds
    else:              # fused
        assert "attention" in kinds and "softmax" not in kinds
    assert g.op("body.attn.in_proj").out.shape == (2, 6, 96)
    assert kinds.count("contiguous") == 2   # splitting q, k, v and merging the heads copy


def test_cross_attention_projects_query_and_memory_apart():
    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.memory = nn.Linear(32, 32)
            self.attn = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x):
            m = self.memory(x)
            return self.attn(x, m, m, need_weights=False)[0]
    g = imported(Classifier(Body()), torch.randn(2, 6, 32))
    assert g.op("body.attn.in_proj_q").out.shape == (2, 6, 32)
    assert g.op("body.attn.in_proj_kv").out.shape == (2, 6, 64)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder(norm_first, activation):
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    body = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(32), enable_nested_tensor=False)
    g = imported(Classifier(body), torch.randn(2, 6, 32))
    assert "body.layers.1.self_attn.attention" in g
    assert sum(op.kind == "layernorm" for op in g) == 5


def test_transformer_decoder_layer_with_a_causal_mask():
    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(32, 32)
            self.decoder = nn.TransformerDecoderLayer(32, 4, 64, batch_first=True)

        def forward(self, x):
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
            return self.decoder(x, self.encoder(x), tgt_mask=mask, tgt_is_causal=True)
    g = imported(Classifier(Body()), torch.randn(2, 6, 32))
    assert g.op("body.decoder.self_attn.attention").attrs["causal"]
    assert not g.op("body.decoder.multihead_attn.attention").attrs["causal"]


class HandWritten(nn.Module):
    """Causal self-attention as nanoGPT writes it: a packed projection split in three, heads
    by view and transpose, q k^T scaled, masked from a buffer, softmax, times v."""

    def __init__(self, d=32, heads=4, length=8):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(50, d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.register_buffer("mask", torch.tril(torch.ones(length, length))
                             .view(1, 1, length, length))
        self.head = nn.Linear(d, 50)

    def forward(self, ids):
        x = self.embed(ids)
        b, t, c = x.size()
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask == 0, float("-inf"))   # (fx cannot slice a buffer
        # by a traced size: the buffer is as long as the sequence)
        y = F.softmax(att, dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.head(self.proj(y)[:, -1])


def test_attention_written_by_hand_with_an_embedding():
    g = imported(HandWritten(), torch.randint(0, 50, (2, 8)))
    assert g.input_op.out.integer and g.input_op.attrs["tokens"] == 50
    kinds = [op.kind for op in g if not op.is_view]
    assert kinds == ["embedding", "linear", "batched_matmul", "scalar", "masked_fill",
                     "softmax", "batched_matmul", "contiguous", "linear", "linear"]


def test_scaled_dot_product_attention_function():
    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(32, 96)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            heads = [z.view(2, 6, 4, 8).transpose(1, 2) for z in (q, k, v)]
            return F.scaled_dot_product_attention(*heads, is_causal=True).transpose(1, 2) \
                .reshape(2, 6, 32)
    g = imported(Classifier(Body()), torch.randn(2, 6, 32))
    (att,) = [op for op in g if op.kind == "attention"]
    assert att.attrs["causal"] and att.out.shape == (2, 4, 6, 8)
    assert any(op.kind == "contiguous" for op in g)   # the reshape of a transposed view copies


def test_vit_class_token_and_position_table():
    class TinyViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 32, 4, 4)
            self.cls = nn.Parameter(torch.zeros(1, 1, 32))
            self.pos = nn.Parameter(torch.zeros(1, 17, 32))
            self.encoder = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            return self.head(self.encoder(x)[:, 0])
    g = imported(TinyViT(), torch.randn(2, 3, 16, 16))
    assert g.op("class_token").params == 32 and g.op("position_embedding").params == 17 * 32


class DistilledViT(nn.Module):
    """DeiT's distilled form: a class and a distillation token before the patches, a head
    on each, their mean."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 32, 4, 4)
        self.cls, self.dist = (nn.Parameter(torch.randn(1, 1, 32)) for _ in range(2))
        self.pos = nn.Parameter(torch.zeros(1, 18, 32))
        self.head, self.head_dist = nn.Linear(32, 10), nn.Linear(32, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        n = x.shape[0]
        x = torch.cat((self.cls.expand(n, -1, -1), self.dist.expand(n, -1, -1), x), dim=1)
        x = x + self.pos
        return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2


def test_two_tokens_before_the_patches_are_one_class_token_op_holding_both():
    g = imported(DistilledViT(), torch.randn(2, 3, 16, 16))
    token = g.op("class_token")
    assert token.params == 2 * 32 and token.out.shape == (2, 18, 32)
    assert token.attrs["tokens"] == 2


def test_the_class_token_kernels_of_two_tokens_are_autograds():
    from validation.calibrate.torch_ops import KernelState, op_kernel
    from workloads.builder import GraphBuilder
    b = GraphBuilder("tokens", input_shape=(5, 4), batch=3)
    x = b.linear(b.input(), 4, name="in")
    y = b.class_token(x, name="tok", tokens=2)
    b.linear(b.flatten(y), 2)
    train = lower_training(b.build())
    state = KernelState(graph=train)
    tokens = [t.detach().requires_grad_(True) for t in state.params_of(train.op("tok"))]
    state.params["tok"] = tokens
    seq = torch.randn(3, 5, 4)
    ref = torch.cat([t.reshape(1, 1, 4).expand(3, -1, -1) for t in tokens] + [seq], 1)
    assert torch.equal(op_kernel(train.op("tok"), state)(seq), ref)
    dy = torch.randn_like(ref)
    grads = torch.autograd.grad(ref, tokens, dy)
    assert torch.allclose(op_kernel(train.op("tok.grad"), state)(dy), torch.cat(grads))
    assert all(torch.allclose(a, b) for a, b in zip(state.grads["tok"], grads, strict=True))


def test_layer_scale():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.gamma = nn.Parameter(torch.full((8, 1, 1), 1e-6))
            self.head = nn.Linear(8, 10)

        def forward(self, x):
            return self.head((x + self.gamma * self.conv(x)).mean((2, 3)))
    g = imported(Block(), torch.randn(2, 8, 5, 5))
    op = g.op("layer_scale")
    assert op.params == 8 and op.attrs["param_shape"] == (8, 1, 1)


def test_what_stays_out_is_named():
    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(32, 4)   # batch_first=False
            self.mix = nn.Bilinear(32, 32, 32)

        def forward(self, x):
            y = self.attn(x, x, x)[0]
            return self.mix(y, y)
    with pytest.raises(WorkloadError) as err:
        from_torch(Classifier(Body()), torch.randn(2, 6, 32))
    assert "torch.nn.MultiheadAttention at module path 'body.attn': has batch_first=False" \
        in str(err.value)
    assert "torch.nn.Bilinear at module path 'body.mix'" in str(err.value)


def test_timms_distilled_deit_imports_with_pytorchs_flops():
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops("timm", "deit_tiny_distilled_patch16_224")


class ClassStream(nn.Module):
    """CaiT's class attention: the class token joins the patches for a layer that reads them
    all, and is carried beside them as its own residual stream."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 32, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, 32))
        self.mix, self.head = nn.Linear(32, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x_cls = self.cls.expand(x.shape[0], -1, -1)
        u = torch.cat((x_cls, x), dim=1)
        x_cls = x_cls + self.mix(u)[:, :1]
        return self.head(torch.cat((x_cls, x), dim=1)[:, 0])


def test_a_class_token_read_again_is_position_0_of_the_op_holding_it():
    g = imported(ClassStream(), torch.randn(2, 3, 16, 16))
    assert g.op("class_token").params == 32
    (token,) = [op for op in g if op.name.endswith("token") and op.kind != "class_token"]
    assert g.op(token.inputs[0]).kind == "class_token" and token.out.shape == (2, 1, 32)


def test_timms_cait_imports_with_pytorchs_flops():
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops("timm", "cait_xxs24_224")
