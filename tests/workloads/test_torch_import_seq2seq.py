"""from_torch on what encoder-decoders and the newer Hugging Face families write: a decoder's
positions read as `table.weight[position_ids]` (Whisper) are a position_embedding; a learned
relative position bias with the causal mask filled in by torch.where (T5's decoder) is the
attention_bias op and a mask fill; and the sweep's own builds of T5, BART, Whisper, DINOv2
and Mixtral import with PyTorch's FLOPs and parameters where transformers is installed."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads.test_torch_import_learned_bias import _sweep_case  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class IndexedPositions(nn.Module):
    """Token embeddings plus position rows indexed by a buffer of ids, weight[ids]."""

    def __init__(self, vocab=64, positions=32, dim=16):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
        self.register_buffer("position_ids", torch.arange(positions)[None])
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        n, s = ids.shape
        ids_at = self.position_ids[:, :s].expand(n, s)
        return self.head(self.tokens(ids) + self.positions.weight[ids_at])


class BiasedCausalAttention(nn.Module):
    """T5's decoder self-attention: a (buckets, heads) table looked up at constant buckets,
    the causal mask filled in with torch.where, passed to SDPA as its mask."""

    def __init__(self, dim=32, heads=4, tokens=8, buckets=16):
        super().__init__()
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias = nn.Embedding(buckets, heads)
        offsets = torch.arange(tokens)[None] - torch.arange(tokens)[:, None]
        self.register_buffer("buckets", offsets.clamp(0, buckets - 1))
        self.register_buffer("causal", torch.ones(tokens, tokens, dtype=torch.bool).tril())
        self.heads = heads

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.bias(self.buckets[:t, :t]).permute(2, 0, 1).unsqueeze(0)
        bias = torch.where(self.causal[:t, :t], bias, torch.finfo(x.dtype).min)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.contiguous())
        return self.out(y.transpose(1, 2).reshape(n, t, c))


def test_positions_read_by_indexing_the_table_are_a_position_embedding():
    g = imported(IndexedPositions(), torch.randint(0, 64, (2, 12)))
    (pos,) = [op for op in g if op.kind == "position_embedding"]
    assert pos.params == 32 * 16 and pos.out.shape == (2, 12, 16)


def test_a_relative_bias_with_the_causal_mask_filled_in_is_a_bias_and_a_mask():
    g = imported(BiasedCausalAttention(), torch.randn(2, 8, 32))
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 16 * 4
    assert any(op.name.endswith(".mask") or op.name == "mask" for op in g
               if op.inputs == (bias.name,))
    train = lower_training(g)
    assert any(op.kind == "attention_bias_grad" for op in train)


@pytest.mark.parametrize("name", ["t5-seq2seq", "bart", "whisper", "dinov2", "mixtral"])
def test_the_sweeps_hugging_face_models_import_with_pytorchs_flops(name):
    from benchmarks.import_sweep import measure
    model, x = _sweep_case("transformers", name)
    found = measure(model, x, name)
    assert not isinstance(found, str), found
    got, expected, _ = found
    assert got == pytest.approx(expected, rel=1e-9)
