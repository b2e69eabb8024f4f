"""from_torch on a Llama-style decoder block written in plain PyTorch: RMSNorm as
pow/mean/rsqrt, rotary embeddings (products with cos and sin tables held in buffers), keys and
values repeated for grouped-query attention (repeat_kv), the SwiGLU MLP; each new kind's
kernels agree with autograd. What stays refused is listed, all at once: a tensor exponent, a
mean over the batch, SDPA's enable_gqa, a cast to another dtype. T5's relative position bias
(a gathered table) is an attention_bias op.
"""
import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

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


@pytest.mark.parametrize("kv_heads", [None, 2])
def test_a_llama_block_imports_with_pytorchs_flops_and_parameters(kv_heads):
    g = imported(Classifier(LlamaDecoderLayer(kv_heads=kv_heads), 64), torch.randn(2, 16, 64))
    kinds = [op.kind for op in g]
    assert kinds.count("pow") == kinds.count("rsqrt") == kinds.count("mean") == 2
    assert kinds.count("layer_scale") == 2          # the RMSNorm scales
    assert kinds.count("mul_table") == 4            # cos and sin, for q and k
    assert kinds.count("repeat_heads") == (2 if kv_heads else 0)
    table = next(op for op in g if op.kind == "mul_table")
    assert table.attrs["table_shape"] == (16, 16) and table.params == 0
    # the table is read besides the input
    assert table.bytes_read == table.in_specs[0].nbytes + 16 * 16 * 4


def test_rotary_tables_computed_from_position_ids_are_constants():
    """cos and sin computed in the forward from position ids and the inverse frequencies (a
    buffer) are no ops: the graph is the one of tables sliced from buffers, and PyTorch's
    counter counts only the frequencies' product (1 x head_dim/2 x 1 by 1 x 1 x seq) more."""
    from tests.workloads.graph_compare import costs
    from tests.workloads.torchvision_zoo import matmul_flops, torch_flops
    x = torch.randn(2, 16, 64)
    computed = Classifier(LlamaDecoderLayer(kv_heads=2, rotary_from_positions=True), 64)
    g = from_torch(computed, x)
    assert costs(g) == costs(from_torch(Classifier(LlamaDecoderLayer(kv_heads=2), 64), x))
    # on the meta device SDPA runs as the products the counter counts
    meta = copy.deepcopy(computed).to("meta").train()
    assert torch_flops(meta, x.to("meta")) - matmul_flops(g) == 2 * 8 * 16


def test_square_powers_and_means_over_trailing_dims_import():
    class Stats(nn.Module):
        def forward(self, x):
            return torch.square(x) * (x ** 3).mean((-2, -1), keepdim=True) * x.mean(-1)[..., None]
    g = from_torch(nn.Sequential(nn.Linear(8, 8), Stats()), torch.randn(2, 4, 8))
    assert [(op.attrs["exponent"]) for op in g if op.kind == "pow"] == [2.0, 3.0]
    means = [(op.attrs["reduced_dims"], op.attrs["keepdim"], op.out.shape)
             for op in g if op.kind == "mean"]
    assert means == [(2, True, (2, 1, 1)), (1, False, (2, 4))]


def test_what_stays_refused_is_listed_at_once():
    class Unsupported(nn.Module):
        def forward(self, x):
            return x.pow(x) + x.mean(0) + x.to(torch.float64).float()
    with pytest.raises(WorkloadError) as err:
        from_torch(Unsupported(), torch.randn(2, 16, 32))
    message = str(err.value)
    assert "4 unsupported ops" in message      # both casts
    for why in ("raises to a tensor power", "takes a mean over dims 0",
                "casts torch.float32 to torch.float64"):
        assert why in message, why


def _autograd(fn, x):
    x = x.clone().requires_grad_()
    y = fn(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    return y.detach(), dy, x.grad


def _kernels(kind, **attrs):
    from workloads.graph import Op, TensorSpec
    from workloads.kinds import kind_of
    x = TensorSpec((2, 4, 16, 8), 4)
    out = {"mean": TensorSpec((2, 4, 16, 1), 4),
           "repeat_heads": TensorSpec((2, 8, 16, 8), 4)}.get(kind, x)
    fwd = Op("op", kind, ("x",), (x,), out, attrs=attrs)
    grad = Op("op.grad", f"{kind}_grad", ("dy",), (out,), x, attrs=attrs, phase="backward",
              forward="op")
    return (kind_of(kind).torch_kernel(fwd, None),
            kind_of(f"{kind}_grad").torch_kernel(grad, None))


@pytest.mark.parametrize("kind, attrs", [
    ("pow", {"exponent": 2.0}), ("pow", {"exponent": 3.0}), ("rsqrt", {}),
    ("mean", {"reduced_dims": 1, "keepdim": True}), ("repeat_heads", {"repeats": 2}),
    ("mul_table", {"table_shape": (16, 8)})])
def test_each_kinds_kernels_are_what_autograd_computes(kind, attrs):
    forward, backward = _kernels(kind, **attrs)
    x = torch.rand(2, 4, 16, 8) + 0.5            # positive: rsqrt
    y, dy, dx = _autograd(forward, x)
    assert torch.allclose(forward(x), y)
    saved = {"pow": (x,), "rsqrt": (y,)}.get(kind, ())
    assert torch.allclose(backward(dy, *saved), dx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_t5_relative_bias_is_a_gathered_table_not_read_as_positions(device):
    """T5's bias table is looked up by bucket ids computed per pair of positions: a gathered
    table added to the scores (one attention_bias op holding it), not rows added per
    position."""
    from tests.workloads.torch_hf_style import T5Attention
    with torch.device(device):
        model, x = T5Attention(), torch.randn(2, 16, 32)
    g = from_torch(model, x)
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.out.shape == (2, 4, 16, 16) and bias.params == 32 * 4
    assert bias.attrs["table_layout"] == "positions_heads"
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert "position_embedding" not in [op.kind for op in g]
