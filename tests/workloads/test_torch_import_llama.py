"""from_torch on a Llama-style decoder block written in plain PyTorch: the SwiGLU MLP (SiLU and
the product of two tensors) and rotate_half's x[..., :h] slices import; RMSNorm written as
pow/mean/rsqrt and rotary embeddings (a product with cos and sin tables held in buffers) are
kinds the IR does not declare, and the model's one error lists all of them. A T5-style
relative position bias is refused too, as what it is."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads.test_torch_import_transformers import Classifier, imported  # noqa: E402
from tests.workloads.torch_hf_style import LlamaDecoderLayer, LlamaMLP, rotate_half  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402


def test_a_swiglu_mlp_imports_with_pytorchs_flops():
    g = imported(Classifier(LlamaMLP(32, 86)), torch.randn(2, 16, 32))
    assert [op.kind for op in g if op.kind in ("silu", "mul")] == ["silu", "mul"]


def test_halves_sliced_through_an_ellipsis_import_as_views():
    class Rotated(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(32, 32)

        def forward(self, x):
            return rotate_half(self.proj(x).view(x.size(0), x.size(1), 4, 8))

    g = imported(Classifier(nn.Sequential(Rotated(), nn.Flatten(2))), torch.randn(2, 16, 32))
    halves = [op for op in g if op.kind == "slice" and op.attrs["dim"] == 3]
    assert [(op.attrs["dim"], op.attrs["start"], op.attrs["stop"]) for op in halves] == [
        (3, 0, 4), (3, 4, 8)]


def test_a_llama_block_lists_every_unsupported_op_at_once():
    with pytest.raises(WorkloadError) as err:
        from_torch(LlamaDecoderLayer(), torch.randn(2, 16, 64))
    message = str(err.value)
    assert message.startswith("LlamaDecoderLayer: 4 unsupported ops (10 calls):")
    norms = "module paths 'input_layernorm', 'post_attention_layernorm'"
    for line in [f"Tensor.pow at {norms}: is not supported",
                 f"Tensor.mean at {norms}: takes a mean over dims -1",
                 f"torch.rsqrt at {norms}: is not supported",
                 "_operator.mul at module path 'self_attn' (4 calls): computes with a tensor "
                 "(16, 16) made of buffers and constants only"]:
        assert line in message, line


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_t5_relative_bias_is_refused_as_a_gathered_table_not_read_as_positions(device):
    """T5's bias table is looked up by bucket ids computed per pair of positions: a gathered
    table (not rows added per position), which the IR models for Swin's windows only."""
    from tests.workloads.torch_hf_style import T5Attention
    with torch.device(device):
        model, x = T5Attention(), torch.randn(2, 16, 32)
    with pytest.raises(WorkloadError) as err:
        from_torch(model, x)
    assert "T5Attention: 1 unsupported op (1 call)" in str(err.value)
    assert "adds a gathered table (32, 4) as (1, 4, 16, 16) to (2, 4, 16, 16)" in str(err.value)
