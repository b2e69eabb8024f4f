"""from_torch: products (squeeze-and-excitation gates) and the reshapes they read, arithmetic
with constants, and layer, group and plain batch norm."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402


def test_arithmetic_with_constants_is_one_kernel_each():
    class HandWritten(nn.Module):
        """Hard swish and a rescaled residual, written with constants as older code does."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            x = x * F.relu6(x + 3.0) / 6.0
            x = torch.clamp(0.5 * x - 1, 0.0, 6.0) + torch.clamp(-x, min=0) + (1 - x)
            return x.clamp(-1, 1).mul_(2)
    g = from_torch(HandWritten(), torch.randn(2, 3, 8, 8))
    ops = [op for op in g.topo() if op.kind not in ("input", "conv2d")]
    assert [(op.kind, op.attrs.get("scale"), op.attrs.get("shift")) for op in ops] == [
        ("scalar", 1.0, 3.0), ("hardtanh", None, None), ("mul", None, None),
        ("scalar", 1 / 6.0, 0.0), ("scalar", 0.5, 0.0), ("scalar", 1.0, -1.0),
        ("hardtanh", None, None), ("scalar", -1.0, 0.0), ("relu", None, None),
        ("add", None, None), ("scalar", -1.0, 1.0), ("add", None, None),
        ("hardtanh", None, None), ("scalar", 2.0, 0.0)]


@pytest.mark.parametrize("body,match", [
    # x - y and x / y import where y has x's shape or broadcasts over it; not the reverse
    (lambda x: x[:, :1] / x, r"computes \(1, 1, 8, 8\) / \(1, 3, 8, 8\)"),
    (lambda x: x[:, :1] - x, r"computes \(1, 1, 8, 8\) - \(1, 3, 8, 8\)"),
    (lambda x: 2.0 / x, "divides a constant"),
    (lambda x: torch.add(x, x, alpha=2), "scales a tensor by alpha"),
    (lambda x: torch.clamp(x, min=1.0), "one bound other than min=0"),
])
def test_arithmetic_it_does_not_model_is_refused(body, match):
    class Net(nn.Module):
        def forward(self, x):
            return body(x)
    with pytest.raises(WorkloadError, match=match):
        from_torch(Net(), torch.randn(1, 3, 8, 8))


class SqueezeExcite(nn.Module):
    """The two ways users write the gate: 1x1 convolutions, or linears and a view."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.reduce, self.expand = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)
        self.fc, self.fc2 = (nn.Sequential(nn.Linear(c, c // 2), nn.ReLU(),
                                           nn.Linear(c // 2, c), nn.Hardsigmoid())
                             for _ in range(2))
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.conv(x)
        x = x * torch.sigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        n, c, _, _ = x.size()
        x = torch.mul(self.fc(x.mean((2, 3))).view(n, c, 1, 1), x)
        x = x * self.fc2(x.mean((2, 3))).unsqueeze(-1).unsqueeze(-1)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_squeeze_and_excitation_gates_lower_to_broadcast_products():
    g = from_torch(SqueezeExcite(8), torch.randn(2, 3, 8, 8))
    muls = [op for op in g.topo() if op.kind == "mul"]
    assert len(muls) == 3 and all(op.attrs["broadcast"] for op in muls)
    assert all(g.op(op.inputs[0]).out.shape == (2, 8, 8, 8) for op in muls)
    assert all(g.op(op.inputs[1]).out.shape == (2, 8, 1, 1) for op in muls)
    assert [op.out.shape for op in g.topo() if op.kind == "reshape"] == [
        (2, 8, 1, 1), (2, 8, 1), (2, 8, 1, 1)]
    assert sum(op.params for op in g if op.kind == "linear") == 2 * (8 * 4 + 4 + 4 * 8 + 8) + 90


def test_reshapes_that_change_the_batch_are_refused():
    class Fold(nn.Module):
        def forward(self, x):
            return x.view(1, -1)
    with pytest.raises(WorkloadError, match="keep the batch dimension"):
        from_torch(Fold(), torch.randn(2, 3, 8, 8))


def test_layer_group_and_plain_batch_norms():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.gn = nn.GroupNorm(2, 8)
            self.bn = nn.BatchNorm2d(8, affine=False)
            self.ln_image = nn.LayerNorm([8, 6, 6], elementwise_affine=False)
            self.fc = nn.Linear(8 * 6 * 6, 16)
            self.ln = nn.LayerNorm(16)
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            x = self.ln_image(self.bn(self.gn(self.conv(x))))
            return self.head(self.ln(self.fc(torch.flatten(x, 1))))
    g = from_torch(Net(), torch.randn(2, 3, 6, 6))
    assert g.op("gn").kind == "groupnorm" and g.op("gn").params == 16
    assert g.op("gn").attrs == {"num_groups": 2, "num_channels": 8, "affine": True}
    assert g.op("bn").params == 0 and g.op("bn").attrs["affine"] is False
    assert g.op("ln_image").attrs == {"normalized_shape": (8, 6, 6), "affine": False}
    assert g.op("ln_image").params == 0 and g.op("ln").params == 32



class ScaleOnly(nn.Module):
    """Layer norms with a scale and no shift: nn.LayerNorm(bias=False) (ModernBERT, timm's
    CAFormer) and F.layer_norm given a weight and bias=None (nanoGPT's LayerNorm(bias=False))."""

    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(12, bias=False)
        self.fc = nn.Linear(12, 12)
        self.scale = nn.Parameter(torch.randn(12))

    def forward(self, x):
        x = self.fc(self.ln(torch.flatten(x, 1)))
        return F.layer_norm(x, (12,), self.scale, None)


def test_a_layer_norm_with_a_scale_and_no_shift_holds_the_scale_alone():
    from validation.calibrate.torch_exec import GraphModule
    from validation.calibrate.torch_ops import op_callable
    from workloads.training import lower_training, param_tensors
    model, x = ScaleOnly(), torch.randn(2, 3, 2, 2)
    g = from_torch(model, x)
    norms = [op for op in g if op.kind == "layernorm"]
    assert [(op.params, op.attrs.get("bias"), param_tensors(op)) for op in norms] == \
        [(12, False, 1), (12, False, 1)]
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert tuple(GraphModule(g)(x).shape) == (2, 12)   # PyTorch replays it, one scale each
    train = lower_training(g)
    assert sum(op.params for op in train.phase("update")) == g.params()
    (grad, _) = [op for op in train if op.kind == "layernorm_grad"]
    run = op_callable(grad, graph=train)   # native_layer_norm_backward without a bias
    assert run is not None and run() is not None


def test_a_layer_norm_with_a_shift_and_no_scale_is_refused():
    class ShiftOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.shift = nn.Parameter(torch.zeros(12))

        def forward(self, x):
            return F.layer_norm(x, (12,), None, self.shift)
    with pytest.raises(WorkloadError, match="a shift without a scale"):
        from_torch(ShiftOnly(), torch.randn(2, 12))


@pytest.mark.parametrize("library, name", [("transformers", "modernbert"),
                                           ("timm", "caformer_s18")])
def test_the_libraries_models_import_with_pytorchs_flops(library, name):
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops(library, name)
