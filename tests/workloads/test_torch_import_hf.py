"""Models written the way Hugging Face's transformers write them, as local replicas (the
library is not a dependency): decorated forwards with optional arguments and dict outputs,
shapes read as tuples, masks made in the forward, ids computed from token ids, eager
attention, Gemma's, Phi-3's, Falcon's and CLIP's idioms; each imports with PyTorch's FLOPs
(torch.utils.flop_counter) and the module's parameters. The CLI runs such a file; the
libraries' own models import where they are installed."""
import functools
import math
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tests.workloads.test_torch_import_idioms import Conv1D, _same_flops  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.torch_import import from_torch  # noqa: E402


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
