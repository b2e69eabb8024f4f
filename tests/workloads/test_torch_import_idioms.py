"""Idioms of Hugging Face transformers and timm models, written here as local replicas (the
libraries are not dependencies): each imports, with PyTorch's own convolution and matmul FLOPs
(torch.utils.flop_counter), and, where another spelling of the same layer imports, the same ops.
Tests at the end import the libraries' own models where they are installed."""
import functools
import math
from collections import OrderedDict

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


def test_an_sdpa_mask_computed_from_parameters_is_refused_not_dropped():
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
    with pytest.raises(WorkloadError, match="mask computed from parameter 'bias'"):
        from_torch(LearnedBias(), torch.randn(2, 8, 32))


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


def test_the_attention_bias_kernels_are_autograds():
    from workloads.graph import Op, TensorSpec
    from workloads.kinds import kind_of
    table = torch.randn(2, 5, requires_grad=True)
    attrs = {"queries": 4, "keys": 4, "table_shape": (2, 5)}
    fwd = Op("b", "attention_bias", ("x",), (TensorSpec((3, 2, 4, 4), 4),),
             TensorSpec((3, 2, 4, 4), 4), attrs=attrs, params=10)
    grad = Op("b.grad", "attention_bias_grad", ("dy",), (fwd.out,), TensorSpec((10,), 4),
              attrs=attrs, phase="backward", forward="b")

    class State:
        grads: dict = {}

        def params_of(self, op):
            return [table]
    x, dy = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    y = kind_of("attention_bias").torch_kernel(fwd, State())(x)
    y.backward(dy)
    index = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 5
    assert torch.allclose(y, x + table[:, index])
    assert torch.allclose(kind_of("attention_bias_grad").torch_kernel(grad, State())(dy),
                          table.grad)


# -- Hugging Face's way of writing a model ---------------------------------------------------
def _returns_tuple(forward):
    """A decorator over (*args, **kwargs), as transformers wraps its forwards."""
    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        kwargs.pop("return_dict", None)
        return forward(self, *args, **kwargs)
    return wrapper


class HFStyleLM(nn.Module):
    """Shapes read as tuples and unpacked, control flow on dtypes and on parameters, a mask
    made with torch.ones, ids viewed, positions from arange, optional arguments and a dict
    output (a ModelOutput)."""

    def __init__(self, vocab=64, width=32, heads=4):
        super().__init__()
        self.heads = heads
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(128, width)
        self.ln, self.qkv, self.head = nn.LayerNorm(width), Conv1D(3 * width, width), \
            nn.Linear(width, vocab, bias=False)

    @_returns_tuple
    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None,
                **kwargs):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        if attention_mask is None:
            attention_mask = torch.ones(input_shape[0], input_shape[-1],
                                        device=input_ids.device)
        if position_ids is None:
            position_ids = torch.arange(input_shape[-1], device=input_ids.device).unsqueeze(0)
        h = self.wte(input_ids) + self.wpe(position_ids).to(input_ids.device)
        if h.dtype != self.ln.weight.dtype:
            h = h.to(self.ln.weight.dtype)
        hidden_shape = (*h.shape[:-1], -1, h.shape[-1] // self.heads)
        q, k, v = self.qkv(self.ln(h)).split(h.shape[-1], dim=2)
        q, k, v = (t.view(hidden_shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(*input_shape, -1)
        if self.head.weight.abs().sum() > 0:   # on parameters alone: the same for every input
            y = h + y
        return OrderedDict(logits=self.head(y), hidden_states=y)


def test_a_model_written_the_hugging_face_way_imports():
    ids = torch.randint(0, 64, (2, 16))
    model = HFStyleLM()
    g = from_torch(model, ids)
    assert g.meta.get("token_logits") and g.topo()[-1].out.shape == (2, 16, 64)
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())
    assert [op.kind for op in g].count("attention") == 1
    _same_flops(model, ids, g)


class RobertaStyleEmbeddings(nn.Module):
    """Position ids computed from the token ids (padding keeps its id), token types gathered
    from a buffer of zeros by them, as RoBERTa writes its embeddings."""

    def __init__(self, vocab=64, width=16, positions=40, pad=1):
        super().__init__()
        self.pad = pad
        self.words = nn.Embedding(vocab, width, padding_idx=pad)
        self.positions = nn.Embedding(positions, width, padding_idx=pad)
        self.types = nn.Embedding(1, width)
        self.register_buffer("token_type_ids", torch.zeros(1, positions, dtype=torch.long),
                             persistent=False)

    def forward(self, ids):
        mask = ids.ne(self.pad).int()
        position_ids = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + self.pad
        types = torch.gather(self.token_type_ids.expand(position_ids.shape[0], -1), 1,
                             position_ids).expand(*ids.shape)
        return self.words(ids) + self.types(types) + self.positions(position_ids)


def test_ids_computed_from_the_token_ids_read_their_tables_as_positions():
    model = RobertaStyleEmbeddings()
    g = from_torch(model, torch.randint(2, 64, (2, 16)))
    assert [op.kind for op in g].count("embedding") == 1
    rows = sorted((op.attrs.get("constant_row", False), op.params) for op in g
                  if op.kind == "position_embedding")
    assert rows == [(False, 40 * 16), (True, 16)]
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())


class EagerAttention(nn.Module):
    """Hugging Face's eager attention: a causal mask made in the forward from the input's
    sizes, added to the scores, softmax in float32 and a cast back with Tensor.type."""

    def forward(self, x):
        n, s, _ = x.shape
        q = x.view(n, s, 4, 8).transpose(1, 2)
        mask = torch.full((s, s), float("-inf")).triu(1)[None, None].expand(n, 1, s, s)
        scores = torch.matmul(q, q.transpose(2, 3)) / math.sqrt(8) + mask
        weights = F.softmax(scores, dim=-1, dtype=torch.float32).type(q.dtype)
        return torch.matmul(weights, q).transpose(1, 2).reshape(n, s, 32)


def test_a_mask_made_while_tracing_is_a_mask_fill():
    x = torch.randn(2, 8, 32)
    g = from_torch(EagerAttention(), x)
    kinds = [op.kind for op in g.topo()]
    assert kinds.count("batched_matmul") == 2 and "masked_fill" in kinds and "softmax" in kinds
    _same_flops(EagerAttention(), x, g)


class ScaledEmbedding(nn.Embedding):
    """Gemma's embedding: a subclass of nn.Embedding (so traced through to F.embedding)."""

    def forward(self, ids):
        return super().forward(ids) * 2.0


class FalconLinear(nn.Linear):
    def forward(self, x):
        return x @ self.weight.T


class GemmaStyleLM(nn.Module):
    """A scaled embedding tied to the output layer, an RMSNorm scaled by 1 + weight, a
    rotary-style cat with an empty piece (the rotation covers the whole width) and Falcon's
    x @ W.T."""

    def __init__(self, vocab=64, width=16):
        super().__init__()
        self.embed = ScaledEmbedding(vocab, width)
        self.norm_weight = nn.Parameter(torch.zeros(width))
        self.proj = FalconLinear(width, width, bias=False)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        h = self.embed(ids)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + self.norm_weight)
        rot, rest = h[..., :16], h[..., 16:]
        h = torch.cat((-rot, rest), dim=-1)
        return self.head(self.proj(h))


def test_gemma_phi3_and_falcon_idioms():
    model = GemmaStyleLM()
    g = from_torch(model, torch.randint(0, 64, (2, 8)))
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())
    assert g.meta["shared_params"] == {"head": "embed.embedding"}
    kinds = [op.kind for op in g]
    assert "concat" not in kinds and kinds.count("linear") == 2 and "layer_scale" in kinds
    _same_flops(model, torch.randint(0, 64, (2, 8)), g)


def test_a_class_embedding_of_one_dimension_is_the_class_token():
    class ClipEmbeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.class_embedding = nn.Parameter(torch.randn(16))
            self.patch = nn.Conv2d(3, 16, 4, stride=4, bias=False)

        def forward(self, x):
            patches = self.patch(x).flatten(2).transpose(1, 2)
            cls = self.class_embedding.expand(x.shape[0], 1, -1)
            return torch.cat([cls, patches], dim=1)
    model = ClipEmbeddings()
    g = from_torch(model, torch.randn(2, 3, 8, 8))
    assert g.topo()[-1].kind == "class_token" and g.topo()[-1].out.shape == (2, 5, 16)
    assert sum(op.params for op in g) == sum(p.numel() for p in model.parameters())


def test_a_shape_mismatch_in_a_model_traced_with_values_is_pytorchs_message():
    class Mismatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(32, 8)

        def forward(self, x):
            return self.fc(torch.cat([x, x], -1).view(*x.shape[:-1], -1))   # 64 features
    with pytest.raises(WorkloadError) as err:
        from_torch(Mismatch(), torch.randn(2, 32))
    message = str(err.value)
    assert "Mismatch does not run on an input of shape (2, 32): at module path 'fc'" in message
    assert "mat1 and mat2 shapes cannot be multiplied" in message


def test_optional_arguments_keep_their_defaults():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x, mask=None):
            y = self.fc(x)
            return y if mask is None else y.masked_fill(mask, 0.0)
    g = from_torch(Masked(), torch.randn(2, 4, 8))
    assert [op.kind for op in g.topo()] == ["input", "linear"]


def test_a_module_made_in_the_forward_is_traced_as_code():
    class Rotate(nn.Module):     # a function made a module (transformers' hub kernels)
        def forward(self, x):
            return torch.cat((-x[..., 4:], x[..., :4]), dim=-1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return Rotate()(self.fc(x))
    g = from_torch(Net(), torch.randn(2, 3, 8))
    assert g.topo()[-1].kind == "concat"


HF_STYLE_FILE = '''
import functools
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F


def wrapped(forward):
    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        return forward(self, *args, **kwargs)
    return wrapper


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(100, 32), nn.Embedding(64, 32)
        self.qkv, self.head = nn.Linear(32, 96), nn.Linear(32, 100, bias=False)

    @wrapped
    def forward(self, input_ids, attention_mask=None, use_cache=None, **kwargs):
        n, s = input_ids.shape
        h = self.wte(input_ids) + self.wpe(torch.arange(s, device=input_ids.device))
        q, k, v = (t.view(n, s, 4, 8).transpose(1, 2) for t in self.qkv(h).split(32, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return OrderedDict(logits=self.head(y.transpose(1, 2).reshape(n, s, 32)))


def make():
    return LM()
'''


def test_the_cli_simulates_a_model_file_written_the_hugging_face_way(tmp_path, capsys):
    from simulator.cli import main
    path = tmp_path / "lm.py"
    path.write_text(HF_STYLE_FILE)
    assert main(["simulate", "--workload", f"{path}:make", "--workload-option",
                 "input_shape=16", "--workload-option", "tokens=100", "--batch", "2",
                 "--hardware", "v100"]) == 0
    assert "Traceback" not in capsys.readouterr().err


# -- the libraries' own models, where installed ------------------------------------------------
def test_hugging_face_gpt2_and_llama_import_with_pytorchs_flops():
    from benchmarks.import_sweep import _load_torchvision, check
    _load_torchvision()
    transformers = pytest.importorskip("transformers")
    for config, model_cls, fields in (
            ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=32, n_layer=1, n_head=4,
                                                   vocab_size=128, n_positions=32)),
            ("LlamaConfig", "LlamaForCausalLM", dict(hidden_size=32, intermediate_size=64,
                                                     num_hidden_layers=1,
                                                     num_attention_heads=4,
                                                     num_key_value_heads=2, vocab_size=128))):
        try:
            model = getattr(transformers, model_cls)(getattr(transformers, config)(**fields))
        except Exception as exc:   # a transformers that does not load beside this torch
            pytest.skip(f"transformers cannot build {model_cls}: {exc}")
        assert check(model.eval(), torch.randint(0, 128, (2, 8)), model_cls) is None


def test_timm_vit_imports_with_pytorchs_flops():
    from benchmarks.import_sweep import _load_torchvision, check
    _load_torchvision()
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                              patch_size=8).eval()
    assert check(model, torch.randn(1, 3, 32, 32), "vit_tiny") is None
    assert math.isfinite(matmul_flops(from_torch(model, torch.randn(1, 3, 32, 32))))
