"""from_torch on dropouts with a broadcast mask: Dropout1d/2d (a draw per channel) and
stochastic depth (a draw per sample), lowered to `dropout_broadcast`, which PyTorch runs."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads.torchvision_zoo import models as torchvision_models  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def net(drop):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), drop, nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


@pytest.mark.parametrize("drop", [nn.Dropout2d(0.25), nn.Dropout1d(0.25)])
def test_channel_dropout_draws_one_value_per_channel(drop):
    shape = (4, 3, 6, 6) if isinstance(drop, nn.Dropout2d) else (4, 3, 6)
    model = net(drop) if isinstance(drop, nn.Dropout2d) else nn.Sequential(
        nn.Conv1d(3, 8, 3, padding=1), drop, nn.Flatten(), nn.Linear(48, 10))
    g = from_torch(model, torch.randn(*shape))
    (op,) = [op for op in g if op.kind == "dropout_broadcast"]
    assert op.attrs == {"p": 0.25, "mask_shape": (4, 8) + (1,) * (len(shape) - 2)}
    assert op.is_view and op.flops == 0   # identity at inference, as in PyTorch
    train = lower_training(g)
    top = train.op(op.name)
    mask = 4 * 8
    assert not top.is_view and top.flops == 2 * mask + top.out.numel
    assert top.bytes_written == top.out.nbytes + mask * 4
    assert train.op(f"{op.name}.grad").flops == top.out.numel


def test_functional_dropout2d_and_p_zero():
    class Net(nn.Module):
        def forward(self, x):
            return F.dropout2d(F.dropout2d(x, 0.5), p=0.0)
    g = from_torch(Net(), torch.randn(2, 3, 4, 4))
    assert [op.kind for op in g] == ["input", "dropout_broadcast"]   # p = 0 is no op


def test_it_runs_in_pytorch_forward_and_backward():
    from validation.calibrate.torch_exec import GraphModule, example_input
    from validation.calibrate.torch_ops import op_callable
    g = from_torch(net(nn.Dropout2d(0.5)), torch.randn(4, 3, 6, 6))
    module = GraphModule(g)
    module.train()
    assert tuple(module(example_input(g)).shape) == (4, 10)
    train = lower_training(g)
    out = op_callable(train.op("1.grad"), graph=train)()
    assert tuple(out.shape) == (4, 8, 6, 6)


def test_stochastic_depth_draws_one_value_per_sample_or_per_batch():
    tvm = torchvision_models()
    if tvm is None:
        pytest.skip("torchvision is not installed")
    from torchvision.ops import StochasticDepth

    class Block(nn.Module):
        def __init__(self, mode):
            super().__init__()
            self.conv, self.drop = nn.Conv2d(8, 8, 3, padding=1), StochasticDepth(0.2, mode)

        def forward(self, x):
            return x + self.drop(self.conv(x))
    for mode, mask in [("row", (2, 1, 1, 1)), ("batch", (1, 1, 1, 1))]:
        g = from_torch(Block(mode), torch.randn(2, 8, 5, 5))
        (op,) = [op for op in g if op.kind == "dropout_broadcast"]
        assert op.name == "drop.stochastic_depth" and op.attrs["mask_shape"] == mask
