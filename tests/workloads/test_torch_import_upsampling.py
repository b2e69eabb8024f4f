"""from_torch on decoders: nn.ConvTranspose2d (the kind conv_transpose2d) and F.interpolate /
nn.Upsample (the kind upsample), against PyTorch's FLOP count and values, and trained."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads.torchvision_zoo import matmul_flops, torch_flops  # noqa: E402
from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from validation.calibrate.torch_ops import op_callable  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


@pytest.mark.parametrize("deconv", [
    nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
    nn.ConvTranspose2d(4, 8, (2, 3), stride=(2, 1), groups=2, bias=False, dilation=(1, 2)),
])
def test_transposed_convolution(deconv):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), deconv)
    x = torch.randn(2, 3, 5, 6)
    g = from_torch(model, x)
    op = g.op("1")
    assert op.kind == "conv_transpose2d" and op.out.shape == tuple(model(x).shape)
    assert matmul_flops(g) == torch_flops(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())
    replay = GraphModule(g)
    with torch.no_grad():   # the replay's parameters set to the model's, in order
        for mine, theirs in zip(replay.parameters(), model.parameters(), strict=True):
            mine.copy_(theirs)
    assert torch.allclose(replay(x), model(x), atol=1e-5)
    classifier = nn.Sequential(*model, nn.Flatten(), nn.Linear(model(x)[0].numel(), 10))
    train = lower_training(from_torch(classifier, x))
    for grad in ("1.grad_input", "1.grad_weight"):
        assert train.op(grad).flops == 2 * op.macs
        out = op_callable(train.op(grad), graph=train)()
        assert out.shape == ((2, 4, 5, 6) if grad.endswith("input") else deconv.weight.shape)


@pytest.mark.parametrize("up", [
    nn.Upsample(scale_factor=2), nn.Upsample(size=(7, 9), mode="bilinear"),
    nn.UpsamplingBilinear2d(scale_factor=3), nn.UpsamplingNearest2d(size=11),
    nn.Upsample(size=(6, 3), mode="bicubic"),
    nn.Upsample(scale_factor=2, mode="bicubic", align_corners=True)])
def test_upsampling_modules_and_interpolate(up):
    x = torch.randn(2, 3, 4, 5)
    g = from_torch(nn.Sequential(up), x)
    op = g.topo()[-1]
    assert op.kind == "upsample" and op.out.shape == tuple(up(x).shape)
    assert torch.allclose(GraphModule(g)(x), up(x), atol=1e-6)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear",
                                 align_corners=False).flatten(1)
    train = lower_training(from_torch(Net(), x))
    grad = train.op("interpolate.grad")
    assert tuple(op_callable(grad, graph=train)().shape) == (2, 3, 4, 5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_bicubic_gradient_is_autograds(align_corners):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return F.interpolate(self.conv(x), size=(7, 6), mode="bicubic",
                                 align_corners=align_corners).flatten(1)
    train = lower_training(from_torch(Net(), torch.randn(2, 3, 4, 5)))
    grad = train.op("interpolate.grad")
    assert grad.flops == 32 * 2 * 3 * 7 * 6 and train.op("interpolate").flops == 40 * 2 * 3 * 42
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    y = F.interpolate(x, size=(7, 6), mode="bicubic", align_corners=align_corners)
    dy = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, (x,), dy)
    from validation.calibrate.torch_ops import KernelState, op_kernel
    assert torch.allclose(op_kernel(grad, KernelState(graph=train))(dy), dx, atol=1e-6)


def test_other_interpolation_modes_are_named():
    class Net(nn.Module):
        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode="area")
    with pytest.raises(WorkloadError, match="mode 'area'; only 2-D 'nearest', 'bilinear' and "
                                            "'bicubic' are supported"):
        from_torch(Net(), torch.randn(1, 3, 4, 4))


def test_timms_crossvit_imports_with_pytorchs_flops():
    """CrossViT interpolates its position tables bicubically and averages its branches."""
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops("timm", "crossvit_tiny_240")
