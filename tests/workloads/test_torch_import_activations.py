"""from_torch: activations (modules, functions, methods), spatial means and BatchNorm1d."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from workloads import from_torch  # noqa: E402
from workloads.builder import GraphBuilder  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402

from .graph_compare import assert_same  # noqa: E402


class Activations(nn.Module):
    """Every activation module, function and method that from_torch lowers, in a small CNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.acts = nn.Sequential(
            nn.ReLU6(), nn.LeakyReLU(0.2), nn.ELU(0.5), nn.GELU(approximate="tanh"),
            nn.SiLU(inplace=True), nn.Hardswish(), nn.Tanh(), nn.Sigmoid(), nn.Hardtanh(-2, 2))
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.acts(self.conv1(x))
        x = F.elu(F.leaky_relu(F.relu6(x, inplace=True), negative_slope=0.1), 2.0)
        x = F.hardtanh(F.hardswish(F.silu(F.gelu(x))), 0, max_val=3)
        x = F.sigmoid(F.tanh(torch.sigmoid(torch.tanh(x))))
        x = torch.sigmoid_(torch.tanh_(x.tanh().sigmoid().tanh_().sigmoid_()))
        x = F.elu_(F.leaky_relu_(F.hardtanh_(self.conv2(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# (kind, attributes) of the activations of Activations, in order: modules, then functions
ACTIVATION_OPS = [
    ("hardtanh", {"min_val": 0.0, "max_val": 6.0}), ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {"alpha": 0.5}), ("gelu", {"approximate": "tanh"}), ("silu", {}),
    ("hardswish", {}), ("tanh", {}), ("sigmoid", {}),
    ("hardtanh", {"min_val": -2.0, "max_val": 2.0}),
    ("hardtanh", {"min_val": 0.0, "max_val": 6.0}), ("leaky_relu", {"negative_slope": 0.1}),
    ("elu", {"alpha": 2.0}), ("gelu", {"approximate": "none"}), ("silu", {}), ("hardswish", {}),
    ("hardtanh", {"min_val": 0.0, "max_val": 3.0}),
    *[(kind, {}) for kind in ["tanh", "sigmoid"] * 5],
]


def activations_builder(batch):
    b = GraphBuilder("Activations", (3, 16, 16), batch=batch)
    x = b.conv2d(b.input(), 8, 3, padding=1, bias=True, name="conv1")
    with b.scope("acts"):
        for i, (kind, attrs) in enumerate(ACTIVATION_OPS[:9]):
            x = b.activation(x, kind, name=str(i), **attrs)
    for kind, attrs in ACTIVATION_OPS[9:]:
        x = b.activation(x, kind, **attrs)
    x = b.conv2d(x, 8, 3, padding=1, name="conv2")
    x = b.activation(x, "hardtanh")
    x = b.activation(b.activation(x, "leaky_relu"), "elu")
    b.linear(b.flatten(b.adaptive_avgpool(x, 1)), 10, name="fc")
    return b.build()


def test_activation_modules_functions_and_methods():
    g = from_torch(Activations(), torch.randn(2, 3, 16, 16))
    acts = [op for op in g if op.kind not in ("input", "conv2d", "adaptive_avgpool", "flatten",
                                              "linear")]
    assert [(op.kind, op.attrs) for op in acts] == ACTIVATION_OPS + [
        ("hardtanh", {"min_val": -1.0, "max_val": 1.0}),
        ("leaky_relu", {"negative_slope": 0.01}), ("elu", {"alpha": 1.0})]
    assert all(type(v) is float for op in acts for k, v in op.attrs.items() if k != "approximate")
    assert {op.out.shape for op in acts} == {(2, 8, 16, 16)}
    assert [op.name for op in acts[:10]] == [f"acts.{i}" for i in range(9)] + ["hardtanh"]
    assert_same(g, activations_builder(2), names=True)


def test_activation_arguments_the_kind_does_not_model_are_refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.act = nn.GELU()
            # an approximation that torch 2 does not know, as a later version might add one
            self.act.approximate = "sigmoid"
            self.act.forward = lambda x: x * torch.sigmoid(1.702 * x)

        def forward(self, x):
            return self.act(self.conv(x))
    with pytest.raises(WorkloadError, match=r"torch\.nn\.GELU at module path 'act'.*"
                                            r"approximate='sigmoid'"):
        from_torch(Net(), torch.randn(1, 3, 8, 8))


def test_spatial_mean_and_batchnorm1d():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm1d(8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            y = self.conv(x)
            z = y.mean((2, 3)) + torch.mean(y, dim=[-1, -2], keepdim=True).flatten(1)
            return self.fc(self.bn(z))
    g = from_torch(Net(), torch.randn(2, 3, 8, 8))
    kinds = [op.kind for op in g.topo()]
    assert kinds.count("adaptive_avgpool") == 2 and "batchnorm" in kinds
    assert g.op("bn").out.shape == (2, 8) and g.op("bn").params == 16

    class BatchMean(nn.Module):
        def forward(self, x):
            return x.mean(0)
    with pytest.raises(WorkloadError, match=r"Tensor.mean .* only the mean over"):
        from_torch(BatchMean(), torch.randn(2, 3, 8, 8))


def test_hardsigmoid_mish_selu_and_softplus():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.acts = nn.Sequential(nn.Hardsigmoid(), nn.Mish(), nn.SELU(),
                                      nn.Softplus(beta=2.0, threshold=10.0))
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = self.acts(self.conv(x))
            x = F.softplus(torch.selu(F.selu(F.mish(F.hardsigmoid(x)))), beta=0.5)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
    g = from_torch(Net(), torch.randn(2, 3, 8, 8))
    acts = [(op.kind, op.attrs) for op in g.topo() if op.kind not in (
        "input", "conv2d", "adaptive_avgpool", "flatten", "linear")]
    assert acts == [("hardsigmoid", {}), ("mish", {}), ("selu", {}),
                    ("softplus", {"beta": 2.0, "threshold": 10.0}),
                    ("hardsigmoid", {}), ("mish", {}), ("selu", {}), ("selu", {}),
                    ("softplus", {"beta": 0.5, "threshold": 20.0})]
