"""from_torch on the maximum over inner dimensions (permuted last, then one amax or
select_values op), the L2 norm over dimensions after the batch (Tensor.norm(p=2, dim),
torch.linalg.vector_norm: one vector_norm op) and ConvNeXt-V2's global response norm written
as timm writes it (the norm over height and width of (N, H, W, C), its mean over the channels,
and torch.addcmul with a learned shift and scale: one addcmul op). Replayed in PyTorch with
the model's values; the gradient kernel runs."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from validation.calibrate.torch_ops import op_callable  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class Norms(nn.Module):
    """Norms over trailing and inner dimensions, kept or not."""

    def forward(self, x):                                   # (N, C, H, W)
        inner = x.norm(p=2, dim=(1, 2), keepdim=True)          # (N, 1, 1, W)
        last = torch.linalg.vector_norm(x, dim=-1)             # (N, C, H)
        return x / (inner + 1e-6) + last.unsqueeze(-1)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN over (N, H, W, C), as timm writes it."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        x_g = x.norm(p=2, dim=(1, 2), keepdim=True)
        x_n = x_g / (x_g.mean(dim=-1, keepdim=True) + 1e-6)
        return x + torch.addcmul(self.bias.view(1, 1, 1, -1), self.weight.view(1, 1, 1, -1),
                                 x * x_n)


def test_l2_norms_over_trailing_and_inner_dimensions_are_one_op_each():
    model, x = Norms(), torch.randn(2, 3, 4, 5)
    g = from_torch(model, x)
    norms = [op for op in g if op.kind == "vector_norm"]
    assert [(op.in_specs[0].shape, op.out.shape, op.attrs["reduced_dims"]) for op in norms] == \
        [((2, 5, 3, 4), (2, 5, 1, 1), 2), ((2, 3, 4, 5), (2, 3, 4), 1)]
    assert norms[0].flops == 2 * 2 * 3 * 4 * 5   # a square and an add per value read
    assert torch.allclose(GraphModule(g)(x), model(x), atol=1e-5)
    train = lower_training(from_torch(nn.Sequential(nn.Conv2d(3, 3, 1), model), x))
    grads = [op for op in train if op.kind == "vector_norm_grad"]
    assert len(grads) == 2
    for grad in grads:
        assert tuple(op_callable(grad, graph=train)().shape) == tuple(grad.out.shape)


def test_a_global_response_norm_imports_with_its_scale_and_shift():
    model, x = GlobalResponseNorm(8), torch.randn(2, 4, 4, 8)
    g = from_torch(model, x)
    kinds = [op.kind for op in g]
    assert kinds.count("vector_norm") == 1 and kinds.count("mean") == 1
    (fused,) = [op for op in g if op.kind == "addcmul"]   # PyTorch's one kernel
    assert "layer_scale" not in kinds and "bias_add" not in kinds
    assert g.params() == 16 and fused.params == 16
    assert fused.bytes_written == fused.in_specs[0].nbytes
    replay = GraphModule(g)
    at = [op.kind for op in g.topo()].index("addcmul")   # the replay's scale and shift
    with torch.no_grad():
        for i, p in enumerate((model.weight, model.bias)):
            p.copy_(replay.weights[f"p{at}_{i}"].view(-1))
    assert torch.allclose(replay(x), model(x), atol=1e-5)
    train = lower_training(g)
    assert sum(op.params for op in train.phase("update")) == 16


class Maxima(nn.Module):
    """The maximum over inner dimensions, kept or not (Hiera's max over its mask units)."""

    def forward(self, x):                                   # (N, C, H, W)
        return x.amax(dim=1) + torch.max(x, 2, keepdim=True)[0].squeeze(2)


def test_the_maximum_over_inner_dimensions_is_the_dimensions_permuted_last_and_one_op():
    """amax writes the maxima; max(x, dim) their positions too (select_values)."""
    model, x = Maxima(), torch.randn(2, 3, 3, 5)
    g = from_torch(model, x)
    maxima = [op for op in g if op.kind in ("amax", "select_values")]
    assert [(op.kind, op.in_specs[0].shape, op.out.shape) for op in maxima] == \
        [("amax", (2, 3, 5, 3), (2, 3, 5)), ("select_values", (2, 3, 5, 3), (2, 3, 5, 1))]
    assert torch.allclose(GraphModule(g)(x), model(x))


@pytest.mark.parametrize("body, match", [
    (lambda x: x.amax(dim=(0, 1)), r"maximum over dims \(0, 1\)"),
    (lambda x: x.norm(p=1, dim=-1), "p=1"),
    (lambda x: x.norm(), "over dims None"),
    (lambda x: x.norm(dim=0), r"dims \[0\]"),
    (lambda x: torch.addcmul(x, x, x), "learned shift"),
])
def test_other_norms_and_products_are_refused_by_name(body, match):
    class Body(nn.Module):
        def forward(self, x):
            return body(x)
    with pytest.raises(WorkloadError, match=match):
        from_torch(Body(), torch.randn(2, 3, 4))


@pytest.mark.parametrize("library, name", [("timm", "convnextv2_atto")])
def test_the_libraries_models_import_with_pytorchs_flops(library, name):
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops(library, name)
