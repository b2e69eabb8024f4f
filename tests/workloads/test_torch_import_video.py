"""from_torch on video networks of (N, C, T, H, W) clips: nn.Conv3d and F.conv3d (the kind
conv3d), BatchNorm3d (a batch norm over each channel of the clip) and AdaptiveAvgPool3d(1)
(the mean over time, height and width). A user's clip classifier and torchvision's video
ResNets import with PyTorch's own FLOPs and the module's parameters, replay in PyTorch,
train, and simulate on a GPU and a CPU; conv3d's gradient kernels are autograd's."""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tests.workloads import torch_user_models as um  # noqa: E402
from tests.workloads.test_torch_import_user_kinds import _op  # noqa: E402
from tests.workloads.test_torch_import_user_models import _torch_flops, imported  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops, models  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def clip():
    return torch.randn(2, 3, 4, 12, 12, generator=torch.Generator().manual_seed(0))


def test_a_clip_classifier_imports_trains_and_replays():
    torch.manual_seed(0)
    g = imported(um.Clip3D(), clip())
    convs = [op for op in g if op.kind == "conv3d"]
    assert [op.attrs["kernel"] for op in convs] == [(3, 3, 3), (1, 3, 3), (3, 1, 1), (1, 2, 2)]
    assert convs[-1].out.shape == (2, 16, 4, 6, 6) and convs[2].attrs["groups"] == 2
    assert [op.kind for op in g if op.name == "pool"] == ["mean"]
    kinds = {op.kind for op in lower_training(g)}
    assert {"conv3d_grad_input", "conv3d_grad_weight", "batchnorm_grad"} <= kinds


@pytest.mark.parametrize("device", ["v100", "skylake-x-6c"])
def test_an_imported_clip_classifier_simulates_a_training_step(device):
    from simulator.api import simulate
    from simulator.cluster import Cluster
    x = torch.randn(4, 3, 8, 32, 32)
    times = []
    for channels in (16, 64):   # 16 times the multiply-adds past the stem: a longer step
        g = from_torch(um.Clip3D(channels).eval(), x)
        result = simulate(g, Cluster.build(device, 1, "eth10g"), "sequential")
        assert result.ok
        times.append(result.iteration_time_s)
    assert 0 < times[0] < times[1]


def _conv3d_kernel(kind, w, b, ins, out, **attrs):
    """conv3d's kernel for `kind` run with the weight and bias given (the forward op's,
    named "fwd")."""
    from validation.calibrate.torch_ops import KernelState
    from workloads.kinds import kind_of
    op = _op(kind, ins, out, "forward" if kind == "conv3d" else "backward", **attrs)
    state = KernelState()
    state.params[op.forward or op.name] = [w, b]
    return kind_of(kind).torch_kernel(op, state), state


@pytest.mark.parametrize("groups", [1, 2])
def test_conv3d_and_its_gradients_are_what_autograd_computes(groups):
    x = torch.randn(2, 4, 3, 5, 5, requires_grad=True)
    w = torch.randn(6, 4 // groups, 3, 1, 2, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    y = F.conv3d(x, w, b, (1, 2, 1), (1, 0, 1), 1, groups)
    dy = torch.randn_like(y)
    y.backward(dy)
    attrs = dict(in_channels=4, out_channels=6, kernel=(3, 1, 2), stride=(1, 2, 1),
                 padding=(1, 0, 1), dilation=(1, 1, 1), groups=groups, bias=True,
                 in_shape=tuple(x.shape), out_shape=tuple(y.shape))
    params = (w.detach(), b.detach())
    forward, _ = _conv3d_kernel("conv3d", *params, [x.shape], y.shape, **attrs)
    assert torch.allclose(forward(x.detach()), y.detach(), atol=1e-5)
    grad_input, _ = _conv3d_kernel("conv3d_grad_input", *params, [y.shape], x.shape, **attrs)
    assert torch.allclose(grad_input(dy), x.grad, atol=1e-4)
    grad_weight, state = _conv3d_kernel("conv3d_grad_weight", *params, [y.shape, x.shape],
                                        w.shape, **attrs)
    assert torch.allclose(grad_weight(dy, x.detach()), w.grad, atol=1e-4)
    assert torch.allclose(state.grads["fwd"][1], b.grad, atol=1e-4)


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_torchvisions_video_resnets_import_with_pytorchs_flops(name):
    tvm = models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    model = getattr(tvm.video, name)(weights=None, num_classes=7).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    g = from_torch(model, x)
    assert matmul_flops(g) == pytest.approx(_torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert sum(op.params for op in lower_training(g).phase("update")) == g.params()


def test_a_pool_to_more_than_one_value_is_refused_by_name():
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 1), torch.nn.AdaptiveAvgPool3d((2, 1, 1)))
    with pytest.raises(WorkloadError, match=r"AdaptiveAvgPool3d at module path '1'.*only "
                                            "output_size 1"):
        from_torch(model, clip())


class _Pooled(torch.nn.Module):
    """S3D's pools: a max pool over space alone, one over time and space with ceil_mode and
    padding, and an average pool."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, 1)
        self.pools = torch.nn.Sequential(
            torch.nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            torch.nn.MaxPool3d(3, stride=2, padding=1, ceil_mode=True),
            torch.nn.AvgPool3d((2, 3, 3), stride=1))
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.pools(self.conv(x)).mean((2, 3, 4)))


def test_3d_max_and_average_pools_import_with_pytorchs_shapes():
    g = imported(_Pooled(), torch.randn(2, 3, 5, 13, 13))
    pools = [op for op in g if op.kind in ("maxpool3d", "avgpool3d")]
    assert [op.out.shape for op in pools] == [(2, 4, 5, 7, 7), (2, 4, 3, 4, 4),
                                              (2, 4, 2, 2, 2)]
    kinds = {op.kind for op in lower_training(g)}
    assert {"maxpool3d_grad", "avgpool3d_grad"} <= kinds


@pytest.mark.parametrize("kind", ["maxpool3d", "avgpool3d"])
def test_3d_pool_gradients_are_autograds(kind):
    from validation.calibrate.torch_ops import KernelState
    from workloads.kinds import kind_of
    x = torch.randn(2, 3, 4, 6, 6, requires_grad=True)
    attrs = dict(kernel=(2, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1), ceil_mode=True)
    pool = F.max_pool3d if kind == "maxpool3d" else F.avg_pool3d
    y = pool(x, attrs["kernel"], attrs["stride"], attrs["padding"], ceil_mode=True)
    dy = torch.randn_like(y)
    y.backward(dy)
    grad = _op(f"{kind}_grad", [y.shape, x.shape], tuple(x.shape), "backward", **attrs)
    kernel = kind_of(f"{kind}_grad").torch_kernel(grad, KernelState())
    got = kernel(dy, x.detach()) if kind == "maxpool3d" else kernel(dy)
    assert torch.allclose(got, x.grad, atol=1e-6)


def test_swin3d_is_refused_with_one_error_naming_its_3d_window_ops():
    """Swin3D runs (its window sizes are computed by a function that changes its list
    arguments in place) and what no kind models is listed, with module paths."""
    tvm = models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    with torch.device("meta"):
        model = tvm.video.swin3d_t().eval()
    with pytest.raises(WorkloadError) as err:
        from_torch(model, torch.randn(1, 3, 8, 64, 64, device="meta"))
    message = str(err.value)
    assert message.startswith("SwinTransformer3d: 6 unsupported ops")
    assert "shifted_window_attention_3d at module paths 'features.0.0.attn'" in message
    assert "_patch_merging_pad at module path 'features.1': merges patches of a tensor of " \
        "shape (1, 4, 16, 16, 96); only (N, H, W, C) maps are supported" in message
